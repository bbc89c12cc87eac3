"""The limits :mod:`fossil.pipeline.images` reads user images under (see its docstring).

Apart so that ``fossil segment --help`` can state them without importing numpy or PIL."""

from __future__ import annotations

MAX_PIXELS = 16384 * 16384  # larger images are refused (they are resized to 448 px anyway)
MAX_DECODE_MB = 512  # default budget of decoded memory, megabytes (FOSSIL_MAX_IMAGE_MB)
MAX_ASPECT = 20  # long side / short side
BUDGET_VARIABLE = "FOSSIL_MAX_IMAGE_MB"
