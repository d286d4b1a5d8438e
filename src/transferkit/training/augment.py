"""Random flips, crops and colour jitter on batches of normalised image tensors (see :mod:`transferkit.augment`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Augmenter:
    """Applies the chosen transforms to (n, 3, h, w) inputs normalised as ``(x - mean) / std`` (0-255 scale).

    Args:
        names: Transforms from :data:`AUGMENTATIONS`.
        mean, std: The backbone's per-channel normalisation (so colour jitter works on real intensities).
        generator: The fine-tuning run's random generator.
    """

    def __init__(
        self, names: Sequence[str], mean: Sequence[float], std: Sequence[float], generator: torch.Generator
    ) -> None:
        self.names = tuple(names)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.generator = generator

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels
        n, _, height, width = x.shape
        if "crop" in self.names:
            x = torch.stack([self._crop(image, height, width) for image in x])
        if "flip" in self.names:
            flip = torch.rand(n, generator=self.generator) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
        if "color" in self.names:
            x = self._color(x)
        return x

    def _crop(self, image: torch.Tensor, height: int, width: int) -> torch.Tensor:
        area = float(self._uniform(1, 0.6, 1.0)) * height * width
        ratio = float(torch.exp(self._uniform(1, *torch.log(torch.tensor([3 / 4, 4 / 3])).tolist())))
        h = min(height, max(1, round((area / ratio) ** 0.5)))
        w = min(width, max(1, round((area * ratio) ** 0.5)))
        top = int(torch.randint(0, height - h + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, width - w + 1, (1,), generator=self.generator))
        patch = image[:, top : top + h, left : left + w].unsqueeze(0)
        return F.interpolate(patch, size=(height, width), mode="bilinear", align_corners=False)[0]

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        raw = x * self.std + self.mean
        raw = raw * self._uniform(n, 0.8, 1.2).view(n, 1, 1, 1)  # brightness
        gray = raw.mean(dim=1, keepdim=True)
        level = gray.mean(dim=(2, 3), keepdim=True)
        raw = level + (raw - level) * self._uniform(n, 0.8, 1.2).view(n, 1, 1, 1)  # contrast
        gray = raw.mean(dim=1, keepdim=True)
        raw = gray + (raw - gray) * self._uniform(n, 0.8, 1.2).view(n, 1, 1, 1)  # saturation
        return (raw.clamp(0, 255) - self.mean) / self.std
