"""Felzenszwalb superpixels: FreeDA's local regions, a region proposer beside OpenCut.

Felzenszwalb & Huttenlocher's graph-based segmentation (``skimage.segmentation.felzenszwalb``)
of the crop's colours: every pixel belongs to exactly one segment, so the masks are mutually
exclusive and cover the image.  FreeDA (the FOSSIL authors' follow-up) pools its dense
features over these segments; fossil pools over them the same way as over OpenCut's masks
(eq. 4), with FreeDA's parameters as the defaults (:class:`fossil.config.SuperpixelConfig`).
"""

from __future__ import annotations

import numpy as np

from fossil.config import SuperpixelConfig


def superpixels(image: np.ndarray, config: SuperpixelConfig | None = None) -> np.ndarray:
    """``image`` (H, W, 3) uint8 → masks (L, H, W) bool, mutually exclusive, covering it."""
    from skimage.segmentation import felzenszwalb  # imported here: a heavy import

    config = SuperpixelConfig() if config is None else config
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 array, got {getattr(image, 'dtype', image)}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W, 3) uint8, got shape {image.shape}")
    # FreeDA passes the image scaled to [0, 1]; felzenszwalb converts uint8 the same way
    labels = felzenszwalb(
        image, scale=config.scale, sigma=config.sigma, min_size=config.min_size, channel_axis=-1
    )
    _, labels = np.unique(labels, return_inverse=True)  # 0..L-1, in label order
    labels = labels.reshape(image.shape[:2])
    return labels[None] == np.arange(labels.max() + 1)[:, None, None]
