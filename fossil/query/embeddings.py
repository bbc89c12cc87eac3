"""Concept query embeddings (design §5.5) with a cache.

A concept's query embedding, ``normalise(mean_templates(concept))``
(:func:`fossil.models.text.concept_embeddings`), depends on the text encoder and the templates
only: not on the collection, its revision or the retrieval settings.  So it is cached apart
from the prototypes, keyed by (encoder name, dim, templates), and survives every ingest: a
query after an ingest, or with other N/K, encodes nothing it has encoded before.  At the
paper's shapes encoding is most of a query (7 CLIP prompts per concept).

:class:`EmbeddingCache` is an LRU in memory over an optional directory (by default
``<store>/cache/embeddings``) holding one ``.npz`` per concept under a folder per key, so
separate processes share it.  A file that cannot be read back whole, or that holds another
concept or a vector of another shape, is dropped with a warning and recomputed, and a
directory that cannot be written turns the disk layer off with a warning: never an error.
Nothing prunes the directory: an entry is ~3 KB at 768 dimensions, and the entries of an
encoder no longer used go with its folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fossil.models.protocols import TextEncoder
from fossil.models.text import TEMPLATES, concept_embeddings

logger = logging.getLogger(__name__)

EMBEDDING_CACHE_DIR = os.path.join("cache", "embeddings")  # under the store directory


def encoder_key(encoder: str, dim: int, templates: Sequence[str]) -> str:
    """The digest that names one (text encoder, dim, templates) folder of the cache."""
    blob = json.dumps({"encoder": encoder, "dim": int(dim), "templates": list(templates)})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def _concept_digest(concept: str) -> str:
    return hashlib.sha256(concept.encode("utf-8")).hexdigest()[:40]


class EmbeddingCache:
    """``concept → (dim,)`` unit float32 query embeddings of one text encoder and template set.

    ``maxsize``: entries kept in memory (0: none); ``directory``: the on-disk cache's root
    (``None``: memory only).  ``hits`` and ``misses`` count concepts, either layer.
    """

    def __init__(
        self,
        encoder: str,
        dim: int,
        *,
        templates: Sequence[str] = TEMPLATES,
        directory: str | os.PathLike[str] | None = None,
        maxsize: int = 4096,
    ) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize ({maxsize}) must be >= 0")
        self.encoder, self.dim, self.templates = encoder, int(dim), tuple(templates)
        self.key = encoder_key(encoder, self.dim, self.templates)
        self.directory = None if directory is None else Path(directory) / self.key
        self.maxsize = maxsize
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def embed(self, text_encoder: TextEncoder, concepts: Sequence[str]) -> np.ndarray:
        """(B,) concepts → (B, dim) query embeddings: cached ones read, the others encoded in
        one :func:`concept_embeddings` call and cached."""
        if (text_encoder.name, int(text_encoder.dim)) != (self.encoder, self.dim):
            raise ValueError(
                f"text encoder {text_encoder.name!r} (dim {text_encoder.dim}) is not this "
                f"cache's ({self.encoder!r}, dim {self.dim})"
            )
        found = {c: v for c in dict.fromkeys(concepts) if (v := self.get(c)) is not None}
        missing = [c for c in dict.fromkeys(concepts) if c not in found]
        if missing:
            computed = concept_embeddings(text_encoder, missing)
            for concept, vector in zip(missing, computed, strict=True):
                self.put(concept, vector)
                found[concept] = vector
        if not concepts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([found[c] for c in concepts]).astype(np.float32, copy=False)

    def get(self, concept: str) -> np.ndarray | None:
        vector = self._memory.get(concept)
        if vector is not None:
            self._memory.move_to_end(concept)
        elif self.directory is not None:
            vector = self._read(concept)
            if vector is not None:
                self._remember(concept, vector)
        if vector is None:
            self.misses += 1
        else:
            self.hits += 1
        return vector

    def put(self, concept: str, vector: np.ndarray) -> None:
        vector = np.array(vector, dtype=np.float32)  # a copy the caller cannot change
        if vector.shape != (self.dim,):
            raise ValueError(
                f"embedding of {concept!r} has shape {vector.shape}, not ({self.dim},)"
            )
        vector.flags.writeable = False
        self._remember(concept, vector)
        if self.directory is not None:
            try:
                self._write(concept, vector)
            except OSError as error:  # a read-only store: the query goes on without the disk
                logger.warning(
                    "cannot write the embedding cache under %s: %s", self.directory, error
                )
                self.directory = None

    def __len__(self) -> int:
        return len(self._memory)

    def _remember(self, concept: str, vector: np.ndarray) -> None:
        if self.maxsize == 0:
            return
        self._memory[concept] = vector
        self._memory.move_to_end(concept)
        while len(self._memory) > self.maxsize:
            self._memory.popitem(last=False)

    def _path(self, concept: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{_concept_digest(concept)}.npz"

    def _read(self, concept: str) -> np.ndarray | None:
        path = self._path(concept)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["concept"]) != concept or str(data["key"]) != self.key:
                    raise ValueError("entry does not match its key")
                vector = np.array(data["vector"], dtype=np.float32)
            if vector.shape != (self.dim,) or not np.isfinite(vector).all():
                raise ValueError(f"vector of shape {vector.shape}, not finite ({self.dim},)")
        except Exception as error:  # noqa: BLE001 - any unreadable file: BadZipFile, zlib.error…
            logger.warning("dropping unreadable embedding cache file %s: %s", path, error)
            path.unlink(missing_ok=True)
            return None
        vector.flags.writeable = False
        return vector

    def _write(self, concept: str, vector: np.ndarray) -> None:
        path = self._path(concept)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, concept=np.array(concept), key=np.array(self.key), vector=vector)
            os.replace(tmp, path)  # atomic: readers see no file or the whole one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
