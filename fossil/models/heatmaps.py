"""DAAM heat maps (design §5.2) and their binarisation into masks (§5.3): pure tensor functions.

The recording processor (:mod:`fossil.models.generator`) sums the conditional cross-attention
probabilities of each hooked layer over the denoising steps; everything after that lives here:

- :func:`aggregate_heatmaps`: per (layer, head) map → bicubic to ``size``² → clamp ≥ 0 →
  mean over every (layer, head) pair → mean over the word's token positions;
- :func:`token_positions`: where a word's tokens sit in the caption's token ids;
- :func:`binarize`: raw word map → boolean mask at the image resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fossil.config import MASK_MODES


def aggregate_heatmaps(
    layer_maps: Sequence[torch.Tensor], positions: Sequence[Sequence[int]], size: int = 64
) -> torch.Tensor:
    """Word heat maps of one image from its per-layer attention sums (design §5.2, DAAM).

    ``layer_maps[l]``: (heads_l, h_l, w_l, T) cross-attention probabilities of layer ``l``
    summed over timesteps (conditional half only).  ``positions[i]``: token indices of word
    ``i`` in the 77-token sequence (start token at 0).  Returns (num_words, size, size)
    float32: for each (layer, head) and token the map is resized bicubic to ``size``² and
    clamped at 0; the token map is the mean over all (layer, head) pairs (layers with more
    heads weigh more, as in DAAM); the word map is the mean of its token maps.
    """
    if not layer_maps:
        raise ValueError("layer_maps is empty: no cross-attention layer was recorded")
    if size < 1:
        raise ValueError(f"size ({size}) must be >= 1")
    for i, word in enumerate(positions):
        if len(word) == 0:
            raise ValueError(f"positions[{i}] is empty: every word needs at least one token")
    num_tokens = layer_maps[0].shape[-1]
    wanted = sorted({int(p) for word in positions for p in word})
    if wanted and not 0 <= wanted[0] <= wanted[-1] < num_tokens:
        raise ValueError(f"token positions {wanted} must lie in [0, {num_tokens})")
    if not wanted:
        return torch.zeros((0, size, size), dtype=torch.float32)
    index = torch.tensor(wanted, dtype=torch.long)
    total = torch.zeros((len(wanted), size, size), dtype=torch.float32)
    pairs = 0
    for layer in layer_maps:
        if layer.ndim != 4 or layer.shape[-1] != num_tokens:
            raise ValueError(
                f"each layer map must be (heads, h, w, {num_tokens}), got {tuple(layer.shape)}"
            )
        heads, h, w, _ = layer.shape
        maps = layer.index_select(-1, index.to(layer.device)).float()  # (heads, h, w, U)
        maps = maps.permute(0, 3, 1, 2).reshape(heads * len(wanted), 1, h, w)
        maps = F.interpolate(maps, size=(size, size), mode="bicubic", align_corners=False)
        maps = maps.clamp_(min=0.0).reshape(heads, len(wanted), size, size)
        total += maps.sum(dim=0).cpu()
        pairs += heads
    token_maps = total / pairs  # (U, size, size)
    row = {p: i for i, p in enumerate(wanted)}
    words = [token_maps[[row[int(p)] for p in word]].mean(dim=0) for word in positions]
    return torch.stack(words)


def token_positions(
    caption_ids: Sequence[int], word_ids: Sequence[int], offset: int = 1
) -> list[int]:
    """Indices in ``caption_ids`` of every occurrence of the sequence ``word_ids`` (design §5.2).

    ``caption_ids`` are the caption's tokens without special tokens, already truncated to
    what the text encoder sees; ``offset`` (1) shifts them past the start token, so the
    result indexes the attention's key axis.  Empty when the word is absent (or truncated).
    """
    n = len(word_ids)
    if n == 0:
        return []
    found: list[int] = []
    target = list(word_ids)
    for start in range(len(caption_ids) - n + 1):
        if list(caption_ids[start : start + n]) == target:
            found.extend(range(start + offset, start + offset + n))
    return found


def _minmax(x: torch.Tensor) -> torch.Tensor:
    low, high = x.min(), x.max()
    if high - low <= 0:
        return torch.zeros_like(x)  # a flat map has no foreground
    return (x - low) / (high - low)


def _zscore(x: torch.Tensor) -> torch.Tensor:
    std = x.std(unbiased=False)
    if std <= 0:
        return torch.full_like(x, float("-inf"))  # sigmoid → 0: a flat map has no foreground
    return (x - x.mean()) / std


def normalise_heatmap(raw: torch.Tensor, mode: str) -> torch.Tensor:
    """Map a raw word heat map (≥ 0) to [0, 1] with one of the design §5.3 modes.

    ``raw-sigmoid-minmax``: minmax(sigmoid(raw)) (the sigmoid flattens peaks first);
    ``minmax``: minmax(raw); ``zscore-sigmoid``: sigmoid((raw − mean) / std).
    """
    if mode == "raw-sigmoid-minmax":
        return _minmax(torch.sigmoid(raw))
    if mode == "minmax":
        return _minmax(raw)
    if mode == "zscore-sigmoid":
        return torch.sigmoid(_zscore(raw))
    raise ValueError(f"mask mode {mode!r} unknown; choose one of {MASK_MODES}")


def resize_heatmap(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(h, w) → (H, W) bicubic (``align_corners=False``), clamped at 0 like the maps."""
    if raw.ndim != 2:
        raise ValueError(f"raw_map must be (h, w), got shape {tuple(raw.shape)}")
    if tuple(raw.shape) == tuple(size):
        return raw.float()
    out = F.interpolate(raw.float()[None, None], size=size, mode="bicubic", align_corners=False)
    return out[0, 0].clamp_(min=0.0)


def binarize(
    raw_map: np.ndarray | torch.Tensor, mode: str, threshold: float, size: tuple[int, int]
) -> np.ndarray:
    """Raw word heat map (h, w) → boolean mask (H, W) = normalise(resize(raw)) > threshold.

    ``size`` is (H, W), the image resolution; ``mode`` one of design §5.3's modes (see
    :func:`normalise_heatmap`); the comparison is strict.  A flat map gives an empty mask.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold ({threshold}) must be in [0, 1]")
    raw = torch.as_tensor(raw_map)
    resized = resize_heatmap(raw, (int(size[0]), int(size[1])))
    return (normalise_heatmap(resized, mode) > threshold).numpy()
