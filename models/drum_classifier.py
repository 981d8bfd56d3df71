"""A small convolutional classifier of drum one-shots, the judge of the drum synth's class metric.

It reads the same log-magnitude NSGT images as ``models.drumsynth.DrumSynthVAE`` (``[B, 1, F, M]`` in
nats, normalised inside by the same two constants). The ``F`` frequency bands are the channels of 1-D
convolutions over time, so the judge knows where in the spectrum energy sits (a kick and a tom differ
mostly in pitch); time is pooled at the end (mean and max), so any length works.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class DrumClassifier(nn.Module):
    """Strided 1-D convolutions over time with bands as channels, mean and max pooling over time, a linear
    layer: ``[B, 1, F, M] -> logits [B, K]``.

    Args:
        num_classes: ``K``.
        bins: ``F``, the frequency bands of the input.
        channels: widths of the strided convolutions (each halves M).
        logmag_mean, logmag_std: normalisation of the log-magnitudes, as in the VAE.
        dropout: dropout before the linear layer.
    """

    def __init__(
        self,
        num_classes: int,
        bins: int,
        channels: tuple[int, ...] = (64, 64, 64),
        logmag_mean: float = 0.0,
        logmag_std: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.logmag_mean, self.logmag_std = float(logmag_mean), float(logmag_std)
        layers: list[nn.Module] = []
        width = bins
        for channels_out in channels:
            layers += [
                nn.Conv1d(width, channels_out, 5, stride=2, padding=2),
                nn.BatchNorm1d(channels_out),
                nn.LeakyReLU(0.2),
            ]
            width = channels_out
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, logmag: Tensor) -> Tensor:
        """``logmag [B, 1, F, M]`` (nats) -> class logits ``[B, K]``."""
        x = self.features((logmag[:, 0] - self.logmag_mean) / self.logmag_std)
        return self.head(self.dropout(torch.cat([x.mean(-1), x.amax(-1)], dim=1)))


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


@torch.no_grad()
def classify(model: DrumClassifier, logmag: Tensor, batch_size: int = 256) -> Tensor:
    """Predicted class ``[N]`` of ``logmag [N, 1, F, M]``, in batches."""
    return torch.cat([model(chunk).argmax(1) for chunk in logmag.split(batch_size)])
