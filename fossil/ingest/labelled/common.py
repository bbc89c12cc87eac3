"""What the three readers share: JSON loading, keys, background and region assembly."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .records import LabelledError, LabelledRegion

BACKGROUND = "_background_"  # labelme's name of the background class
IGNORE = "__ignore__"  # labelme's name of the pixels to ignore


def load_json(path: Path) -> Any:
    """The parsed JSON file at ``path``; a missing, unreadable or corrupt file is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelledError(str(path), "file", f"cannot read ({error})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise LabelledError(
            str(path), f"line {error.lineno} column {error.colno}", f"not valid JSON ({error.msg})"
        ) from error


def key_of(path: Path, root: Path) -> str:
    """A file's key: its path relative to the parent of the folder given (or of the given
    file's folder), so reading a file alone or its folder gives it the same key."""
    base = root.parent if root.is_dir() else root.parent.parent
    return path.relative_to(base).as_posix()


def assemble(
    names: Iterable[str],
    masks: dict[str, np.ndarray],
    ignore: np.ndarray,
    *,
    file: str,
    with_background: bool,
    background: str | None,
) -> tuple[LabelledRegion, ...]:
    """Regions in order: the background first (only ``with_background``: the pixels no class
    and no ignore covers, under the ``background`` name), then ``names``; ignore pixels are
    removed from every region.  A class left without a pixel is an error."""
    regions = []
    if with_background and background is not None:
        covered = ignore.copy()
        for name, mask in masks.items():
            if name != background:
                covered |= mask
        own = masks.get(background, np.zeros_like(ignore))
        back = (~covered | own) & ~ignore
        if back.any():
            regions.append(LabelledRegion(background, back))
    for name in names:
        if name == background:
            continue
        mask = masks[name] & ~ignore
        if not mask.any():
            raise LabelledError(file, f"class {name!r}", "covers no pixel (empty mask)")
        regions.append(LabelledRegion(name, mask))
    return tuple(regions)
