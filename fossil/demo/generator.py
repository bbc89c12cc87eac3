"""SYNTHETIC world: a Stable Diffusion + DAAM stand-in (:class:`SyntheticGenerator`).

It implements :class:`fossil.models.protocols.Generator`: for each caption it matches the
caption's nouns (from the real noun parser) to vocabulary materials, renders a scene with
one region per mentioned material (plus, sometimes, an unmentioned background material),
and returns a heat map per located noun that is imperfect the way DAAM's are (design §5.2):
shifted, blurred, partly missing, with attention leaking onto the rest of the image and
sometimes a spurious blob.  Heat maps are binarised exactly like fossil's (design §5.3, through
:func:`fossil.models.heatmaps.binarize`).  Nouns that name no material are ``skipped``.
Everything is seeded from the caption text: the same caption gives the same image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from fossil.config import GenerationConfig
from fossil.demo.render import Scene, render_scene
from fossil.demo.vocabulary import VOCABULARY, Material, match_noun
from fossil.models.generator import caption_seed, check_inputs
from fossil.models.heatmaps import binarize
from fossil.records import GeneratedImage, Noun
from fossil.segment.pooling import resize_masks

WORLD_VERSION = "synthetic-world-v1"  # bump when rendering or heat maps change
MAX_REGIONS = 4


@dataclass(frozen=True)
class HeatmapNoise:
    """How far the synthetic heat maps are from the truth (units: heat-map pixels)."""

    shift: int = 3  # max misalignment, pixels, per axis
    blur: tuple[float, float] = (2.0, 4.5)  # Gaussian sigma range
    dropout: float = 0.7  # up to this fraction of the region's attention is lost (smoothly)
    leak: tuple[float, float] = (0.15, 0.5)  # smooth attention on the rest of the image
    spurious_probability: float = 0.5  # chance of a wrong blob
    spurious_strength: tuple[float, float] = (0.5, 1.0)  # its peak, relative to the region
    gain: tuple[float, float] = (1.0, 4.0)  # raw map peak (before the design §5.3 sigmoid)

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise ValueError(f"shift ({self.shift}) must be >= 0")
        for name in ("dropout", "spurious_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be in [0, 1]")
        for name in ("blur", "leak", "spurious_strength", "gain"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f"{name} ({(low, high)}) must satisfy 0 <= low <= high")


def imperfect_heatmap(
    truth: np.ndarray, rng: np.random.Generator, noise: HeatmapNoise
) -> np.ndarray:
    """DAAM-like raw heat map (h, w) float32 ≥ 0 from a ground-truth soft mask (h, w)."""
    h, w = truth.shape
    dy, dx = rng.integers(-noise.shift, noise.shift + 1, 2)
    heat = ndimage.shift(truth.astype(np.float32), (dy, dx), order=0, mode="nearest")
    heat = ndimage.gaussian_filter(heat, rng.uniform(*noise.blur))
    keep = _smooth(rng, (h, w), sigma=h / 8)  # partly missing: attention drops in places
    heat *= 1.0 - noise.dropout * keep
    heat += rng.uniform(*noise.leak) * _smooth(rng, (h, w), sigma=h / 10)
    if rng.random() < noise.spurious_probability:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        yy, xx = np.mgrid[0:h, 0:w]
        sigma = rng.uniform(h / 16, h / 8)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        heat += rng.uniform(*noise.spurious_strength) * float(heat.max()) * blob
    peak = float(heat.max())
    if peak <= 0:
        return np.zeros((h, w), np.float32)
    return (rng.uniform(*noise.gain) * np.clip(heat, 0, None) / peak).astype(np.float32)


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth random field in [0, 1] (Gaussian-filtered white noise, min-max scaled)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    low, high = field.min(), field.max()
    return ((field - low) / (high - low + 1e-12)).astype(np.float32)


class SyntheticGenerator:
    """Renders the scene a caption describes, with DAAM-like heat maps and design §5.3 masks.

    Images are ``size``² RGB; ``config`` supplies the heat-map side, mask mode and threshold
    (design §5.2–§5.3; its height/width/steps do not apply)."""

    def __init__(
        self,
        size: int = 256,
        *,
        config: GenerationConfig | None = None,
        background_probability: float = 0.3,
        noise: HeatmapNoise | None = None,
        vocabulary: Sequence[Material] = VOCABULARY,
    ) -> None:
        if size < 32:
            raise ValueError(f"size ({size}) must be >= 32")
        if not 0.0 <= background_probability <= 1.0:
            raise ValueError(f"background_probability ({background_probability}) must be in [0, 1]")
        if len(vocabulary) < MAX_REGIONS:
            raise ValueError(f"vocabulary must hold at least {MAX_REGIONS} materials")
        self.size = size
        self.config = config or GenerationConfig()
        self.background_probability = background_probability
        self.noise = noise or HeatmapNoise()
        self.vocabulary = tuple(vocabulary)
        self.name = WORLD_VERSION
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> str:
        settings = {
            "world": WORLD_VERSION,
            "size": self.size,
            "background_probability": self.background_probability,
            "noise": asdict(self.noise),
            "vocabulary": [asdict(m) for m in self.vocabulary],
            "heatmap_size": self.config.heatmap_size,
            "mask_mode": self.config.mask_mode,
            "heatmap_threshold": self.config.heatmap_threshold,
        }
        blob = json.dumps(settings, sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]

    def generate(
        self, captions: Sequence[str], nouns: Sequence[Sequence[Noun]]
    ) -> list[GeneratedImage]:
        """One image per caption, seeded from the caption text, with a mask per located noun."""
        check_inputs(captions, nouns)
        return [
            self._one(caption, list(found)) for caption, found in zip(captions, nouns, strict=True)
        ]

    def scene_for(self, caption: str, nouns: Sequence[Noun]) -> tuple[Scene, list[int | None]]:
        """The scene drawn for ``caption`` and the material of each noun (None: not drawn)."""
        rng = np.random.default_rng(caption_seed(caption))
        materials: list[int] = []
        for noun in nouns:
            index = match_noun(noun, self.vocabulary)
            if index is not None and index not in materials and len(materials) < MAX_REGIONS:
                materials.append(index)
        unused = [i for i in range(len(self.vocabulary)) if i not in materials]
        if len(materials) < 2:  # a scene has at least two regions
            extra = 2 - len(materials)
        else:  # sometimes an unmentioned background material
            extra = int(len(materials) < MAX_REGIONS and rng.random() < self.background_probability)
        for _ in range(extra):
            materials.append(unused.pop(int(rng.integers(len(unused)))))
        scene = render_scene(materials, rng, (self.size, self.size), self.vocabulary)
        drawn = [match_noun(noun, self.vocabulary) for noun in nouns]
        return scene, [m if m in materials else None for m in drawn]

    def _one(self, caption: str, nouns: list[Noun]) -> GeneratedImage:
        scene, drawn = self.scene_for(caption, nouns)
        rng = np.random.default_rng([caption_seed(caption), 1])  # heat-map noise stream
        side = self.config.heatmap_size
        located = [(noun, m) for noun, m in zip(nouns, drawn, strict=True) if m is not None]
        heatmaps = np.zeros((len(located), side, side), np.float32)
        for i, (_, material) in enumerate(located):
            truth = resize_masks(scene.mask(material)[None], (side, side))[0]
            heatmaps[i] = imperfect_heatmap(truth, rng, self.noise)
        masks = np.zeros((len(located), self.size, self.size), bool)
        for i, heat in enumerate(heatmaps):
            masks[i] = binarize(
                heat, self.config.mask_mode, self.config.heatmap_threshold, scene.labels.shape
            )
        return GeneratedImage(
            caption=caption,
            seed=caption_seed(caption),
            image=scene.image,
            nouns=tuple(noun for noun, _ in located),
            heatmaps=heatmaps,
            masks=masks,
            skipped=tuple(noun for noun, m in zip(nouns, drawn, strict=True) if m is None),
        )
