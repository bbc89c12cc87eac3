"""The compact binary answer of ``GET /prototypes`` (issue 29), written by the server and
read by ``fossil eval/query --server`` (:mod:`fossil.client`).

One uncompressed ``.npz`` (numpy only, no pickle): ``concepts`` (C,) unicode;
``prototypes`` (ΣK_c, dim) float32, the concepts' K_c prototypes one after another;
``counts`` (C,) int64 K_c per concept; ``references`` (C,) int64 references retrieved per
concept; ``revision``, ``collection_size`` (int64) and ``taken_at`` (float64, Unix seconds):
the collection revision the prototypes were computed at, its reference count and when.
The server also sends the revision as the ``X-Fossil-Revision`` header.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MEDIA_TYPE = "application/octet-stream"
REVISION_HEADER = "X-Fossil-Revision"
_FIELDS = ("concepts", "prototypes", "counts", "references", "revision", "collection_size",
           "taken_at")  # fmt: skip


@dataclass(frozen=True)
class Prototypes:
    """The prototypes of a concept set as one server computed them."""

    concepts: tuple[str, ...]
    prototypes: tuple[np.ndarray, ...]  # per concept (K_c, dim) float32
    references: tuple[int, ...]  # references retrieved per concept
    revision: int
    collection_size: int
    taken_at: float  # Unix seconds

    def __post_init__(self) -> None:
        if not (len(self.concepts) == len(self.prototypes) == len(self.references)):
            raise ValueError(
                f"{len(self.concepts)} concepts, {len(self.prototypes)} prototype sets and "
                f"{len(self.references)} reference counts: expected one of each per concept"
            )


def encode(found: Prototypes) -> bytes:
    """``found`` as ``.npz`` bytes (see the module)."""
    dims = {int(p.shape[1]) for p in found.prototypes if p.ndim == 2}
    if len(dims) > 1:
        raise ValueError(f"prototype sets of different dims {sorted(dims)}")
    dim = dims.pop() if dims else 0
    stacked = (
        np.concatenate([np.asarray(p, np.float32) for p in found.prototypes])
        if found.prototypes
        else np.zeros((0, dim), np.float32)
    )
    buffer = io.BytesIO()
    np.savez(
        buffer,
        concepts=np.array(found.concepts, dtype=np.str_),
        prototypes=stacked,
        counts=np.array([len(p) for p in found.prototypes], np.int64),
        references=np.array(found.references, np.int64),
        revision=np.int64(found.revision),
        collection_size=np.int64(found.collection_size),
        taken_at=np.float64(found.taken_at),
    )
    return buffer.getvalue()


def decode(data: bytes) -> Prototypes:
    """The :class:`Prototypes` of :func:`encode`'s bytes; ``ValueError`` naming what is
    wrong when they are not such an answer."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [name for name in _FIELDS if name not in npz.files]
            if missing:
                raise ValueError(f"prototype answer lacks {', '.join(missing)}")
            arrays = {name: npz[name] for name in _FIELDS}
    except (OSError, EOFError, zipfile.BadZipFile) as error:  # not an .npz at all
        raise ValueError(f"prototype answer is not an .npz file ({error})") from error
    counts = [int(c) for c in arrays["counts"]]
    stacked = arrays["prototypes"]
    if sum(counts) != len(stacked):
        raise ValueError(f"prototype answer: counts sum to {sum(counts)}, {len(stacked)} rows")
    ends = [int(e) for e in np.cumsum(counts)]
    return Prototypes(
        concepts=tuple(str(c) for c in arrays["concepts"]),
        prototypes=tuple(_split(stacked, ends)),
        references=tuple(int(r) for r in arrays["references"]),
        revision=int(arrays["revision"]),
        collection_size=int(arrays["collection_size"]),
        taken_at=float(arrays["taken_at"]),
    )


def _split(stacked: np.ndarray, ends: Sequence[int]) -> list[np.ndarray]:
    starts = [0, *ends[:-1]]
    pairs = zip(starts, ends, strict=True)
    return [np.ascontiguousarray(stacked[s:e], np.float32) for s, e in pairs]
