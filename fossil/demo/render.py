"""SYNTHETIC world: procedural scenes with a ground-truth label map (pure numpy).

A scene is a smooth partition of the image into 2–4 regions (:func:`partition`: wavy
horizon bands, warped Voronoi cells or noise blobs), each filled with one material's
texture (:func:`texture`) drawn with random colour, scale and orientation variation.
Every random choice comes from the ``np.random.Generator`` passed in: the same generator
state gives the same scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from fossil.demo.vocabulary import VOCABULARY, Material, TextureSpec

LAYOUTS: tuple[str, ...] = ("horizon", "voronoi", "blobs")
MIN_REGION_FRACTION = 0.06  # every region of a scene covers at least this much of the image
# std of smoothstep-bilinear value noise over N(0, 1) lattice points: E[(1−s)² + s²] = 0.7429
_VALUE_NOISE_STD = 0.7429


@dataclass(frozen=True)
class Scene:
    """A rendered scene: ``image`` (H, W, 3) uint8, ``labels`` (H, W) int16 material index
    per pixel, ``materials`` the material index of each region in order."""

    image: np.ndarray
    labels: np.ndarray
    materials: tuple[int, ...]

    def mask(self, material: int) -> np.ndarray:
        """(H, W) bool: the pixels of ``material``."""
        return self.labels == material


def lattice_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth value noise at coordinates ``u``, ``v`` (any equal shapes) in lattice units:
    one random N(0, 1) value per integer point, smoothstep-weighted bilinear interpolation;
    zero mean, unit std."""
    u0, v0 = np.floor(u.min()), np.floor(v.min())
    iu, iv = np.floor(u - u0).astype(np.intp), np.floor(v - v0).astype(np.intp)
    fu, fv = u - u0 - iu, v - v0 - iv
    su, sv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    lattice = rng.standard_normal((int(iv.max()) + 2, int(iu.max()) + 2)).astype(np.float32)
    top = lattice[iv, iu] * (1 - su) + lattice[iv, iu + 1] * su
    bottom = lattice[iv + 1, iu] * (1 - su) + lattice[iv + 1, iu + 1] * su
    return (top * (1 - sv) + bottom * sv) / _VALUE_NOISE_STD


def fractal_noise(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, octaves: int = 3
) -> np.ndarray:
    """Sum of ``octaves`` of :func:`lattice_noise`, each twice as fine and half as strong."""
    total = np.zeros(u.shape, np.float32)
    for octave in range(octaves):
        total += 0.5**octave * lattice_noise(rng, u * 2**octave, v * 2**octave)
    return total / np.sqrt(sum(0.25**o for o in range(octaves)))


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``x``, ``y`` (H, W) in units of the image's longer side."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    return x, y


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``u`` along lines ``angle`` degrees from horizontal, ``v`` across them."""
    theta = np.deg2rad(angle)
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    return x * c + y * s, -x * s + y * c


def _frame(shape: tuple[int, int], angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotated coordinates (H, W) of every pixel, see :func:`_rotate`."""
    return _rotate(*_grid(shape), angle)


def _mix(rng: np.random.Generator, spec: TextureSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per-pixel weight of the secondary colour, in [0, 1], for ``spec.pattern``."""
    s = spec.scale
    if spec.pattern == "grain":  # streaks along u: grass blades, flames
        n = lattice_noise(rng, u / (5 * s), v / s) + 0.5 * lattice_noise(rng, u / (2 * s), v / s)
        return np.clip(0.5 + 0.3 * n, 0, 1)
    if spec.pattern == "gradient":  # smooth ramp across the lines: sky
        ramp = (v - v.min()) / max(float(np.ptp(v)), 1e-6)
        return np.clip(ramp + 0.05 * fractal_noise(rng, u / 0.3, v / 0.3, 2), 0, 1)
    if spec.pattern == "waves":  # warped sinusoidal crests: water
        warp = 0.35 * s * fractal_noise(rng, u / (4 * s), v / (2 * s), 2)
        return (0.5 + 0.5 * np.sin(2 * np.pi * (v + warp) / s)) ** 2
    if spec.pattern == "noise":  # isotropic fractal noise: sand, rock, snow, road, mud
        return np.clip(0.5 + 0.3 * fractal_noise(rng, u / s, v / s), 0, 1)
    if spec.pattern == "stripes":  # warped parallel lines: wood grain
        warp = 0.6 * s * fractal_noise(rng, u / (8 * s), v / (3 * s), 2)
        return 0.5 + 0.5 * np.sin(2 * np.pi * (v + warp) / s)
    if spec.pattern == "spots":  # blobs covering `density` of the area: leaves, flowers
        n = fractal_noise(rng, u / s, v / s, 2)
        threshold = np.quantile(n, 1.0 - spec.density)
        return 1.0 / (1.0 + np.exp(-(n - threshold) / 0.12))
    if spec.pattern == "bricks":  # staggered rows, mortar in the secondary colour
        row_height, brick = s / 2, s
        row = np.floor(v / row_height)
        along = u / brick + 0.5 * (row % 2)
        mortar = (v / row_height - row < 0.15) | (along - np.floor(along) < 0.06)
        shade = lattice_noise(rng, np.floor(along) * 7.3, row * 3.1) * 0.08
        return np.where(mortar, 1.0, np.clip(0.1 + shade, 0, 1))
    if spec.pattern == "checker":  # squares alternating colours: tiles, woven carpet
        return ((np.floor(u / s) + np.floor(v / s)) % 2).astype(np.float32)
    raise ValueError(f"pattern {spec.pattern!r} unknown")


def texture(spec: TextureSpec, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 in [0, 255]: one instance of the material drawn by ``spec``."""
    return texture_at(spec, *_grid(shape), rng)


def texture_at(
    spec: TextureSpec, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Colours (..., 3) float32 in [0, 255] of one instance of the material at pixel
    coordinates ``x``, ``y`` (any equal shapes, units of the image side), with random
    orientation, scale and colour variation, low-frequency shading and per-pixel grain."""
    angle = spec.orientation + rng.uniform(-1, 1) * spec.orientation_jitter
    scale = spec.scale * (1.0 + rng.uniform(-1, 1) * spec.scale_jitter)
    u, v = _rotate(x, y, angle)
    t = _mix(rng, replace(spec, scale=min(scale, 1.0)), u, v)[..., None].astype(np.float32)
    shift = rng.normal(0.0, spec.colour_jitter / 2, 3) + rng.normal(0.0, spec.colour_jitter)
    base = np.asarray(spec.colour, np.float32) + shift
    secondary = np.asarray(spec.secondary, np.float32) + shift
    image = (1.0 - t) * base + t * secondary
    image += 6.0 * fractal_noise(rng, u / 0.35, v / 0.35, 2)[..., None]  # shading
    image += rng.normal(0.0, spec.grain, image.shape).astype(np.float32)
    return np.clip(image, 0, 255)


def partition(
    rng: np.random.Generator, shape: tuple[int, int], num_regions: int, layout: str | None = None
) -> np.ndarray:
    """(H, W) int region index in ``[0, num_regions)``; every region covers at least
    ``MIN_REGION_FRACTION`` of the image.  ``layout`` is one of ``LAYOUTS`` (random when
    None); a layout whose draw leaves a region too small is redrawn, then falls back to
    horizon bands, which always satisfy the bound."""
    if not 1 <= num_regions <= 6:
        raise ValueError(f"num_regions ({num_regions}) must be in [1, 6]")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} unknown; choose one of {LAYOUTS}")
    if num_regions == 1:
        return np.zeros(shape, np.int16)
    choice = layout or LAYOUTS[int(rng.integers(len(LAYOUTS)))]
    draw = {"horizon": _horizon, "voronoi": _voronoi, "blobs": _blobs}[choice]
    for _ in range(8):
        regions = draw(rng, shape, num_regions)
        counts = np.bincount(regions.ravel(), minlength=num_regions)
        if counts.min() >= MIN_REGION_FRACTION * regions.size:
            return regions
    return _horizon(rng, shape, num_regions)


def _horizon(rng: np.random.Generator, shape: tuple[int, int], num_regions: int) -> np.ndarray:
    """Horizontal bands with wavy boundaries, mean band heights at least 1.5× the minimum."""
    u, v = _frame(shape, rng.uniform(-10, 10))
    v = (v - v.min()) / max(float(np.ptp(v)), 1e-6)
    least = 1.5 * MIN_REGION_FRACTION
    heights = least + (1.0 - num_regions * least) * rng.dirichlet(np.full(num_regions, 3.0))
    cuts = np.cumsum(heights)[:-1]
    regions = np.zeros(shape, np.int16)
    for cut in cuts:
        wave = 0.04 * fractal_noise(rng, u / 0.25, np.zeros_like(u), 2)
        regions += (v + wave > cut).astype(np.int16)
    return regions


def _voronoi(rng: np.random.Generator, shape: tuple[int, int], num_regions: int) -> np.ndarray:
    """Voronoi cells of random seeds in coordinates warped by smooth noise."""
    u, v = _frame(shape, 0.0)
    wu = u + 0.08 * fractal_noise(rng, u / 0.3, v / 0.3, 2)
    wv = v + 0.08 * fractal_noise(rng, u / 0.3, v / 0.3, 2)
    seeds = rng.uniform(0.1, 0.9, (num_regions, 2)) * [u.max(), v.max()]
    distance = (wu[None] - seeds[:, 0, None, None]) ** 2 + (wv[None] - seeds[:, 1, None, None]) ** 2
    return distance.argmin(axis=0).astype(np.int16)


def _blobs(rng: np.random.Generator, shape: tuple[int, int], num_regions: int) -> np.ndarray:
    """Region 0 is the background; each other region is a smooth noise blob on top of it."""
    u, v = _frame(shape, 0.0)
    regions = np.zeros(shape, np.int16)
    for index in range(1, num_regions):
        field = fractal_noise(rng, u / 0.35, v / 0.35, 2)
        cy, cx = rng.uniform(0.2, 0.8, 2) * [v.max(), u.max()]
        field -= 4.0 * ((u - cx) ** 2 + (v - cy) ** 2)  # keep the blob near its centre
        regions[field > np.quantile(field, 1.0 - 0.8 / num_regions)] = index
    return regions


def render_scene(
    materials: Sequence[int],
    rng: np.random.Generator,
    size: tuple[int, int] = (256, 256),
    vocabulary: Sequence[Material] = VOCABULARY,
    layout: str | None = None,
) -> Scene:
    """A scene with one region per entry of ``materials`` (indices into ``vocabulary``,
    distinct, 1 to 6 of them); ``size`` is (H, W)."""
    if not materials or len(set(materials)) != len(materials):
        raise ValueError(f"materials ({list(materials)}) must be distinct and non-empty")
    bad = [m for m in materials if not 0 <= m < len(vocabulary)]
    if bad:
        raise ValueError(f"materials {bad} out of range [0, {len(vocabulary)})")
    if min(size) < 16:
        raise ValueError(f"size ({size}) must be at least 16×16")
    regions = partition(rng, size, len(materials), layout)
    x, y = _grid(size)
    image = np.zeros((*size, 3), np.float32)
    labels = np.zeros(size, np.int16)
    for region, material in enumerate(materials):
        inside = regions == region
        image[inside] = texture_at(vocabulary[material].texture, x[inside], y[inside], rng)
        labels[inside] = material
    return Scene(image.round().astype(np.uint8), labels, tuple(int(m) for m in materials))
