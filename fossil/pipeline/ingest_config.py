"""The typed inputs of :func:`fossil.pipeline.ingest.ingest_corpora`: where the collection
is (:class:`StoreAddress`), which models to load (:class:`ModelChoice`) and how the run works
through the captions (:class:`IngestOptions`).  Commands build them from their flags."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fossil.config import GenerationConfig, TextConfig

if TYPE_CHECKING:
    from fossil.db.protocols import Collection, CollectionMeta
    from fossil.models.loading import ModelProfile


@dataclass(frozen=True)
class StoreAddress:
    """Where a collection lives: the store directory ``root`` (embedded vectors, SQLite
    catalog, thumbnails), or a Qdrant server ``qdrant_url`` with the catalog at
    ``catalog_url`` (else in ``root``).  ``shards``/``replicas``: for a server collection
    this run creates."""

    root: str | Path | None = None
    qdrant_url: str | None = None
    api_key: str | None = None
    catalog_url: str | None = None
    shards: int | None = None
    replicas: int | None = None

    def __post_init__(self) -> None:
        for name in ("shards", "replicas"):
            value = getattr(self, name)
            if value is not None and (value < 1 or self.qdrant_url is None):
                raise ValueError(f"{name} ({value}) must be >= 1 and needs qdrant_url")
        if self.root is None and self.catalog_url is None:
            raise ValueError("a store needs a directory (root) or a catalog_url")

    @property
    def catalog(self) -> str:
        """The catalog's SQLAlchemy URL."""
        from fossil.db.open import store_catalog_url

        if self.catalog_url:
            return self.catalog_url
        assert self.root is not None  # __post_init__
        return store_catalog_url(self.root)

    def open(
        self, meta: CollectionMeta | None = None, *, create: bool = False, **options: Any
    ) -> Collection:
        """:func:`fossil.db.open.open_collection` at this address (``options``: its other
        keywords, e.g. ``release_stale_leases``)."""
        from fossil.db.open import open_collection

        return open_collection(
            self.root,
            qdrant_url=self.qdrant_url,
            api_key=self.api_key,
            catalog_url=self.catalog_url,
            meta=meta,
            create=create,
            shard_number=self.shards,
            replication_factor=self.replicas,
            **options,
        )

    @property
    def where(self) -> str:
        return str(self.catalog_url or self.root)

    def catalog_exists(self) -> bool:
        from fossil.db.open import CATALOG_FILE

        return self.catalog_url is not None or (
            self.root is not None and (Path(self.root).expanduser() / CATALOG_FILE).is_file()
        )


@dataclass(frozen=True)
class ModelChoice:
    """The models an ingest loads: ``profile`` (a name, a TOML path or a profile; None: the
    models the store records, else the paper's) in ``workers`` processes (1: this one),
    ``devices`` given out to them in turn (None: cuda if available, else cpu)."""

    profile: str | ModelProfile | None = None
    devices: tuple[str | None, ...] = (None,)
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers ({self.workers}) must be >= 1")
        if not self.devices:
            raise ValueError("devices must name at least one device (None: automatic)")


@dataclass(frozen=True)
class IngestOptions:
    """How an ingest run works through the captions."""

    batch_size: int = GenerationConfig().batch_size  # captions per generator call and write
    limit: int | None = None  # captions to process at most in this run (None: all)
    lease_seconds: float = 1800.0  # how long a claimed batch stays reserved
    thumbnails: bool = True  # write each reference's thumbnail under the store directory
    progress: bool = False  # tqdm bar
    only_given: bool = False  # claim only the given corpora's captions (else all pending)
    owner: str | None = None  # lease owner (None: lease_owner(), host:pid)
    text: TextConfig = field(default_factory=TextConfig)  # design §5.5 the TRE's template weight

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size ({self.batch_size}) must be >= 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit ({self.limit}) must be >= 0")
        if self.lease_seconds <= 0:
            raise ValueError(f"lease_seconds ({self.lease_seconds}) must be > 0")


def lease_owner(role: str | None = None) -> str:
    """The name this process leases captions under, ``host:pid`` (``host:pid:role``, e.g.
    ``--extend``'s): unique among the workers sharing a catalog."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return owner if role is None else f"{owner}:{role}"
