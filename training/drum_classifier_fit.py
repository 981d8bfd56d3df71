"""Fitting the drum classifier (``models.drum_classifier``), the judge of the drum synth's class metric
(measured alone by ``training/drumsynth_judge.py``)."""

import torch
from torch import Tensor
from torch.nn import functional as F

from latentlive.models.drum_classifier import DrumClassifier


def train_classifier(
    logmag: Tensor,
    classes: Tensor,
    num_classes: int,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    logmag_mean: float = 0.0,
    logmag_std: float = 1.0,
    channels: tuple[int, ...] = (64, 64, 64),
    seed: int = 0,
) -> DrumClassifier:
    """Fit a :class:`DrumClassifier` on ``logmag [N, 1, F, M]`` with labels ``classes [N]`` (cross-entropy,
    AdamW, random batches drawn with a private generator); returns it in eval mode on ``logmag``'s device."""
    generator = torch.Generator().manual_seed(seed)
    model = DrumClassifier(num_classes, logmag.shape[2], channels, logmag_mean, logmag_std).to(logmag.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=max(1, steps))
    model.train()
    with torch.enable_grad():  # callers may sit in no_grad (evaluation)
        for _ in range(steps):
            index = torch.randint(len(logmag), (min(batch_size, len(logmag)),), generator=generator)
            index = index.to(logmag.device)
            loss = F.cross_entropy(model(logmag[index]), classes[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()
