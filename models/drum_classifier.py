"""A small convolutional classifier of drum one-shots, the judge of the drum synth's class metric.

It reads the same log-magnitude NSGT images as ``models.drumsynth.DrumSynthVAE`` (``[B, 1, F, M]`` in
nats, normalised inside by the same two constants). The ``F`` frequency bands are the channels of 1-D
convolutions over time, so the judge knows where in the spectrum energy sits (a kick and a tom differ
mostly in pitch); time is pooled at the end (mean and max), so any length works. It is fitted by
``latentlive.training.drum_classifier_fit``.
"""

import torch
from torch import Tensor, nn


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


@torch.no_grad()
def classify(model: DrumClassifier, logmag: Tensor, batch_size: int = 256) -> Tensor:
    """Predicted class ``[N]`` of ``logmag [N, 1, F, M]``, in batches."""
    return torch.cat([model(chunk).argmax(1) for chunk in logmag.split(batch_size)])
