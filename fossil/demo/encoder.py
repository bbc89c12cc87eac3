"""SYNTHETIC world: a generic dense visual encoder standing in for DINOv2 / DINO.

:class:`SyntheticDenseEncoder` never sees ground truth and works on any RGB image: it
resizes the image to ``input_size``², then describes each ``patch``² patch (over a window
twice its side) by

- its mean colour in an opponent space (lightness, red–green, yellow–blue),
- the log variance of lightness and of both chroma channels,
- the log energy of a fixed bank of seeded random zero-mean filters applied to lightness at
  several scales (texture: period, orientation, contrast).

Region features (``keys=False``): these statistics with fixed per-group offsets and weights
(design constants of the encoder, like an image-normalisation mean/std), comparable across
images — the Visual Reference Embedding and region-feature extractor.

OpenCut keys (``keys=True``): the same statistics smoothed over 3×3 patches, centred per
image, each feature group balanced, and L2-normalised per patch, so the cosine between
patches of different materials of one image is low and within a material high.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# Design constants of the feature groups: value = weight · (statistic − offset).
_LOG_EPS = 1e-5  # floor under every variance / energy before the log
_COLOUR_WEIGHT = 4.0  # opponent colours span about ±0.5
_LOG_OFFSET = -6.0  # log variance/energy of typical 8-bit textures lies in about [−11, −2]
_LOG_WEIGHT = 0.35
# OpenCut keys: weight of each group (colour, log variances, filter energies) after it is
# scaled to unit mean squared norm.  Measured on 12 held-out scenes: within-material cosine
# 0.82 vs between −0.53 (plain per-dimension standardisation: 0.55 vs −0.31), OpenCut mask
# purity 0.90 vs 0.87, coverage 0.86 vs 0.65.
_KEY_GROUP_WEIGHTS = (2.0, 1.0, 1.0)


class SyntheticDenseEncoder:
    """Per-patch colour and texture statistics: ``features(images) -> (B, h, w, dim)`` with
    ``h = w = input_size // patch`` (implements :class:`fossil.models.protocols.DenseEncoder`).
    """

    def __init__(
        self,
        input_size: int = 256,
        patch: int = 8,
        *,
        keys: bool = False,
        num_filters: int = 8,
        scales: Sequence[int] = (1, 2, 4),
        seed: int = 0,
    ) -> None:
        if patch < 2 or patch % 2 or input_size % patch:
            raise ValueError(
                f"input_size ({input_size}) must be a multiple of patch ({patch}), an even "
                "number >= 2"
            )
        if num_filters < 1:
            raise ValueError(f"num_filters ({num_filters}) must be >= 1")
        if not scales or any(s < 1 or patch % (2 * s) for s in scales):
            raise ValueError(
                f"scales ({tuple(scales)}) must be >= 1 and divide patch ({patch}) / 2"
            )
        self.input_size, self.patch, self.keys = input_size, patch, keys
        self.scales = tuple(int(s) for s in scales)
        self.grid = input_size // patch
        bank = np.random.default_rng(seed).standard_normal((num_filters, 1, 7, 7))
        bank -= bank.mean(axis=(2, 3), keepdims=True)
        bank /= np.sqrt((bank**2).sum(axis=(2, 3), keepdims=True))
        self._bank = torch.from_numpy(bank.astype(np.float32))
        self.dim = 3 + 3 + num_filters * len(self.scales)
        self._groups = ((0, 3), (3, 6), (6, self.dim))  # colour, log variances, energies
        kind = "keys" if keys else "features"
        self.name = (
            f"synthetic-{kind}-s{input_size}-p{patch}-f{num_filters}"
            f"-x{'.'.join(map(str, self.scales))}-seed{seed}"
        )

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(B, H, W, 3) uint8 images (any sizes) → (B, h, w, dim) float32."""
        if len(images) == 0:
            return np.zeros((0, self.grid, self.grid, self.dim), np.float32)
        batch = torch.stack([self._prepare(i, image) for i, image in enumerate(images)])
        with torch.no_grad():
            stats = self._statistics(batch)  # (B, dim, h, w)
            out = self._standardise(stats) if self.keys else self._weigh(stats)
        return out.permute(0, 2, 3, 1).contiguous().numpy()

    def _prepare(self, index: int, image: np.ndarray) -> torch.Tensor:
        """One uint8 image → (3, input_size, input_size) float in [0, 1]."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(f"images[{index}] must be a uint8 array, got {type(image)}")
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"images[{index}] must be (H, W, 3), got shape {image.shape}")
        x = (
            torch.from_numpy(np.require(image, requirements=["C", "W"]))
            .permute(2, 0, 1)[None]
            .float()
            / 255
        )
        if x.shape[-2:] != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return x[0]

    def _pool(self, x: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """(B, c, S/scale, S/scale) → (B, c, h, w): mean over windows twice the patch side,
        centred on each patch."""
        step = self.patch // scale
        return F.avg_pool2d(x, 2 * step, stride=step, padding=step // 2, count_include_pad=False)

    def _statistics(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] → (B, dim, h, w) raw statistics (colours, log values)."""
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        opponent = torch.cat([(r + g + b) / 3 - 0.5, r - g, (r + g) / 2 - b], dim=1)
        mean = self._pool(opponent)
        variance = (self._pool(opponent**2) - mean**2).clamp_min(0)
        parts = [mean, torch.log(variance + _LOG_EPS)]
        lightness = opponent[:, :1]
        for scale in self.scales:
            level = F.avg_pool2d(lightness, scale) if scale > 1 else lightness
            response = F.conv2d(F.pad(level, (3, 3, 3, 3), mode="reflect"), self._bank)
            parts.append(torch.log(self._pool(response**2, scale) + _LOG_EPS))
        return torch.cat(parts, dim=1)

    def _weigh(self, stats: torch.Tensor) -> torch.Tensor:
        """Region features: fixed offsets and weights per group, comparable across images."""
        colour, logs = stats[:, :3], stats[:, 3:]
        return torch.cat([_COLOUR_WEIGHT * colour, _LOG_WEIGHT * (logs - _LOG_OFFSET)], dim=1)

    def _standardise(self, stats: torch.Tensor) -> torch.Tensor:
        """OpenCut keys: per image, the statistics averaged over each patch's 3×3
        neighbourhood, centred over the image's patches; each group (colour, log variances,
        filter energies) scaled to unit mean squared norm and weighted (colour twice); then
        each patch L2-normalised."""
        x = F.avg_pool2d(stats, 3, stride=1, padding=1, count_include_pad=False)
        x = x - x.mean(dim=(2, 3), keepdim=True)
        parts = []
        for (start, end), weight in zip(self._groups, _KEY_GROUP_WEIGHTS, strict=True):
            group = x[:, start:end]
            scale = group.pow(2).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True).sqrt()
            parts.append(weight * group / (scale + 1e-6))
        return F.normalize(torch.cat(parts, dim=1), dim=1)
