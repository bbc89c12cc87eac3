"""OpenCut segmentation and region scoring (design §5.7, §5.8): pure array code.

``opencut(keys, image=None, config=None) -> (L, H, W) bool`` is the entry point; scoring lives
in :mod:`fossil.segment.scoring`, region pooling (eq. 4) in :mod:`fossil.segment.pooling`.
"""

from fossil.segment.opencut import opencut

__all__ = ["opencut"]
