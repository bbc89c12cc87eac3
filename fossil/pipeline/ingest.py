"""One ingest run as one library call (design §1.1, §2): :func:`ingest_corpora`.

It registers caption corpora in a collection (deduplicated by normalised text), hands back
the leases of runs that died (an embedded store opened here is locked to this process:
:func:`fossil.db.open.open_collection`), claims the pending captions in batches, turns them
into references (in this process with given or loaded models, or in a
:class:`~fossil.ingest.pool.WorkerPool`), writes them in the design §4 order and brings the
collection's saved lemma index up to date.  Progress goes to a tqdm bar (``progress``
switch) and to an optional ``on_progress`` callback; nothing is printed.  ``fossil ingest``
and ``--extend`` (:func:`fossil.pipeline.extend.extend`) both run it;
:func:`register_corpora` is ``fossil ingest --register-only``.

It sits in the pipeline layer because the lemma index belongs to :mod:`fossil.query`, which
:mod:`fossil.ingest` may not import (the two are independent layers).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fossil.db.protocols import CatalogStore, Collection, CollectionMeta
from fossil.db.schema import SCHEMA_VERSION
from fossil.db.space import OPEN_MARGIN, WRITE_MARGIN, require_free
from fossil.ingest.corpora import CorpusFile, check_corpus_names
from fossil.ingest.references import IngestModels, IngestStats, collection_meta
from fossil.pipeline.ingest_config import IngestOptions, ModelChoice, StoreAddress, lease_owner

if TYPE_CHECKING:
    from fossil.ingest.pool import WorkerPool
    from fossil.ingest.worker import Process
    from fossil.models.loading import ModelProfile

logger = logging.getLogger(__name__)

ModelLoader = Callable[[], IngestModels]


@dataclass(frozen=True)
class IngestProgress:
    """What :func:`ingest_corpora` reports: ``"start"`` once the corpora are registered
    (``total``: the captions this run sets out to process), ``"batch"`` after each written
    batch and ``"end"`` when the loop is over (``captions`` completed and ``references``
    written so far in this run).  ``message``: a line for the user, when a caller adds one
    (``--extend``'s estimate)."""

    stage: str
    total: int
    captions: int = 0
    references: int = 0
    message: str | None = None


@dataclass(frozen=True)
class Registered:
    """One registered corpus: what its file(s) held and what the catalog added."""

    name: str
    read: int
    skipped: int
    added: int
    duplicates: int


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest run did.  ``idle``: nothing was pending (no model was loaded);
    ``store_references`` is None when the vector store was not opened (idle, register
    only); ``interrupted``: stopped before the end (``should_stop``, or Ctrl-C)."""

    corpora: tuple[Registered, ...] = ()
    store_captions: Mapping[str, int] = field(default_factory=dict)
    store_references: int | None = None
    stats: IngestStats = field(default_factory=IngestStats)
    total: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    idle: bool = False

    def as_dict(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "corpora": [asdict(r) for r in self.corpora],
            "captions_processed": stats.captions,
            "captions_without_nouns": stats.without_nouns,
            "failures": stats.failures,
            "references_written": stats.references,
            "empty_masks": stats.empty_masks,
            "nouns_not_located": stats.not_located,
            "mask_area_mean": round(stats.mask_area_mean, 4),
            "elapsed_s": round(self.elapsed_s, 2),
            "interrupted": self.interrupted,
            "store_captions": dict(self.store_captions),
            "store_references": self.store_references,
        }


class IngestAborted(KeyboardInterrupt):
    """Ctrl-C during a batch: the batches in flight were handed back; ``summary`` is what
    the run did until then."""

    def __init__(self, summary: IngestSummary) -> None:
        super().__init__("ingest interrupted")
        self.summary = summary


class NothingToIngest(FileNotFoundError):
    """No corpora given and the store does not exist (``store_exists`` False) or holds no
    corpus: there is nothing to process."""

    def __init__(self, problem: str, *, store_exists: bool) -> None:
        super().__init__(f"{problem}: give caption corpora to ingest")
        self.problem, self.store_exists = problem, store_exists


def model_loaders(
    profile: str | ModelProfile, devices: Sequence[str | None], workers: int
) -> list[ModelLoader]:
    """One picklable loader of ``profile``'s ingest models per worker, ``devices`` given out
    in turn.  The seam where a caller (or a test) puts other models into a run."""
    from fossil.models.loading import command_roles, load_models

    roles = command_roles("ingest")
    return [
        partial(load_models, profile, device=devices[i % len(devices)], roles=roles)
        for i in range(workers)
    ]


def meta_profile(meta: CollectionMeta) -> ModelProfile:
    """The profile of the models a collection records (its ``collection_meta``)."""
    from fossil.models.loading import collection_profile

    return collection_profile(
        {"text": meta.text_encoder, "dense": meta.dense_encoder, "generator": meta.generator}
    )


def register_corpora(store: StoreAddress, corpora: Sequence[CorpusFile]) -> IngestSummary:
    """The corpora go into the catalog (created when missing); no model is loaded and the
    vector store is not touched: workers process them later (:func:`ingest_corpora` with
    no corpora)."""
    from fossil.db.catalog import SqlCatalog

    check_corpus_names(corpora)  # before the catalog is created
    if store.catalog_url is None:
        assert store.root is not None
        require_free(store.root, OPEN_MARGIN, "register corpora")
        Path(store.root).expanduser().mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog(store.catalog)
    try:
        _check_registered_names(catalog, corpora)
        registered = tuple(_register(catalog, corpus) for corpus in corpora)
        counts = catalog.status_counts()
    finally:
        catalog.close()
    return IngestSummary(corpora=registered, store_captions=counts)


def ingest_corpora(
    store: StoreAddress | Collection,
    corpora: Sequence[CorpusFile] = (),
    models: IngestModels | ModelChoice | None = None,
    options: IngestOptions | None = None,
    *,
    on_progress: Callable[[IngestProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    write_lock: AbstractContextManager[object] | None = None,
) -> IngestSummary:
    """Register ``corpora`` in ``store`` and process every pending caption (with
    ``options.only_given``, only theirs) until done, ``options.limit`` or ``should_stop()``.

    ``store``: an address (opened here, created when missing, closed at the end) or an open
    collection (left open).  ``models``: loaded models (run in this process) or what to
    load (:class:`ModelChoice`, the default); either must match the collection's
    ``collection_meta`` (:class:`~fossil.db.open.MetaMismatchError`).  With no corpora,
    an address whose captions are all done gives an ``idle`` summary before any model is
    loaded, and one that does not exist or holds no corpus raises :class:`NothingToIngest`.
    Ctrl-C during a batch hands the batches in flight back and raises
    :class:`IngestAborted`, carrying the summary so far.  A rerun resumes; nothing is
    generated twice.  ``write_lock``: held while each batch is written (``fossil serve``'s
    readers of the same open collection see whole batches only)."""
    run = IngestRun(store, corpora, options or IngestOptions(), on_progress, should_stop)
    run.write_lock = write_lock
    if store.root is not None:  # the catalog is read below (fossil.db.space)
        require_free(store.root, OPEN_MARGIN, "open the store")
    with _existing_catalog(store) as catalog:  # read once, before any model is loaded
        _check_names(catalog, corpora)
        if isinstance(store, StoreAddress) and not corpora:
            done = _nothing_pending(store, catalog)
            if done is not None:
                return IngestSummary(store_captions=done, idle=True)
        recorded = _recorded_meta(store, catalog)
    if store.root is not None:  # before any model is loaded; each batch checks again
        require_free(store.root, WRITE_MARGIN, "ingest")
    phrases = [c.phrase for c in corpora if c.phrase]
    if not isinstance(models, ModelChoice) and models is not None:
        if phrases:
            _warn_without_nouns(models.nouns, phrases)
        return run.execute(collection_meta(models, SCHEMA_VERSION), models)
    choice = models or ModelChoice()
    profile = _profile(choice.profile, recorded)
    if phrases:
        from fossil.models.loading import load_noun_parser, resolve_profile

        _warn_without_nouns(load_noun_parser(resolve_profile(profile).ids["nouns"]), phrases)
    loaders = model_loaders(profile, choice.devices, choice.workers)
    if choice.workers == 1:
        loaded = loaders[0]()
        return run.execute(collection_meta(loaded, SCHEMA_VERSION), loaded)
    from fossil.ingest.pool import WorkerPool

    weight, root = run.options.text.template_weight, run.thumbnails
    with WorkerPool(
        loaders, schema_version=SCHEMA_VERSION, template_weight=weight, thumbnail_root=root
    ) as pool:
        return run.execute(pool.wait_ready(), pool)


@contextmanager
def _existing_catalog(store: StoreAddress | Collection) -> Iterator[CatalogStore | None]:
    """The catalog of ``store`` for the checks before models load: an open collection's
    own, or the address's opened once and closed after (``None``: there is none yet)."""
    from fossil.db.catalog import SqlCatalog

    if isinstance(store, Collection):
        yield store.catalog
        return
    if not store.catalog_exists():
        yield None
        return
    catalog = SqlCatalog(store.catalog)
    try:
        yield catalog
    finally:
        catalog.close()


def _check_names(catalog: CatalogStore | None, corpora: Sequence[CorpusFile]) -> None:
    """:func:`~fossil.ingest.corpora.check_corpus_names` against the corpora given and those
    the store's catalog (when it exists) registered."""
    check_corpus_names(corpora)
    if catalog is not None:
        _check_registered_names(catalog, corpora)


def _check_registered_names(catalog: CatalogStore, corpora: Sequence[CorpusFile]) -> None:
    if any(c.named_after_file for c in corpora):
        check_corpus_names(corpora, {c["name"]: c["source"] for c in catalog.corpora()})


def _warn_without_nouns(parser: Any, phrases: list[str]) -> None:
    from fossil.ingest.concepts import warn_without_nouns

    warn_without_nouns(parser, phrases)


def _recorded_meta(
    store: StoreAddress | Collection, catalog: CatalogStore | None
) -> CollectionMeta | None:
    """The ``collection_meta`` the store records (None: a new store)."""
    if isinstance(store, Collection):
        return store.meta
    return None if catalog is None else catalog.get_meta()


def _profile(given: str | ModelProfile | None, recorded: CollectionMeta | None) -> Any:
    """``given``, else the models the store records, else the paper's."""
    if given is not None:
        return given
    return "paper" if recorded is None else meta_profile(recorded)


def store_profile(store: StoreAddress | Collection, given: str | ModelProfile | None) -> Any:
    """:func:`_profile` for ``store`` (its catalog is read only when ``given`` is None)."""
    if given is not None:
        return given
    with _existing_catalog(store) as catalog:
        return _profile(None, _recorded_meta(store, catalog))


def _nothing_pending(store: StoreAddress, catalog: CatalogStore | None) -> dict[str, int] | None:
    """With no corpora given: the store's caption counts when nothing is left to process
    (None when there is work).  Raises :class:`NothingToIngest` when the store does not
    exist (``catalog`` None) or holds no corpus, before any model is loaded."""
    from fossil.db.open import CATALOG_FILE

    if catalog is None:
        raise NothingToIngest(
            f"no fossil store at {store.root} (no {CATALOG_FILE})", store_exists=False
        )
    counts = catalog.status_counts()
    if not catalog.corpora():
        raise NothingToIngest(
            f"the catalog of {store.where} holds no corpus yet", store_exists=True
        )
    if counts["pending"] or counts["leased"] or counts["failed"]:
        return None  # leased: expired ones are retried; failed: retried below the limit
    return counts


def _open(store: StoreAddress | Collection, meta: CollectionMeta) -> Collection:
    """The collection to write (an address is opened, created when missing, with the
    leases of dead runs handed back when the embedded lock proves this process alone)."""
    from fossil.db.open import MetaMismatchError, meta_mismatch

    if isinstance(store, Collection):
        mismatch = meta_mismatch(store.meta, meta)
        if mismatch:
            raise MetaMismatchError(
                f"references must be generated with the collection's models: {mismatch}"
            )
        return store
    return store.open(meta, create=True, release_stale_leases=True)


@contextmanager
def _closed_after(collection: Collection, given: StoreAddress | Collection) -> Iterator[None]:
    """Close ``collection`` at the end unless it is the ``given`` one (the caller's)."""
    try:
        yield
    except BaseException:
        if collection is not given:
            _close_after_error(collection)
        raise
    if collection is not given:
        collection.close()


def _claimable(catalog: CatalogStore, names: Sequence[str] | None, limit: int | None) -> int:
    """Captions this run sets out to process: the store's pending ones, or those of the
    corpora ``names`` still to process; at most ``limit``."""
    if names is None:
        total = catalog.status_counts()["pending"]
    else:
        counts = catalog.status_counts(corpora=names)
        total = counts["pending"] + counts["leased"] + counts["failed"]
    return total if limit is None else min(total, limit)


class IngestRun:
    """One :func:`ingest_corpora` run, set up before its models are known;
    :meth:`execute` runs it once they are."""

    def __init__(
        self,
        store: StoreAddress | Collection,
        corpora: Sequence[CorpusFile],
        options: IngestOptions,
        on_progress: Callable[[IngestProgress], None] | None,
        should_stop: Callable[[], bool] | None,
        process: Process | None = None,
    ) -> None:
        self.store, self.corpora, self.options = store, corpora, options
        self.process = process  # run_ingest's: labelled photos pass theirs
        self.on_progress = on_progress or (lambda progress: None)
        self.should_stop = should_stop or (lambda: False)
        root = store.root
        self.thumbnails = None if not options.thumbnails or root is None else Path(root)
        self.names = [c.name for c in corpora] if options.only_given else None
        self.write_lock: AbstractContextManager[object] | None = None  # BatchWriter's lock

    def execute(
        self, meta: CollectionMeta, models: IngestModels | WorkerPool | None
    ) -> IngestSummary:
        """Open the collection for ``meta``, register the corpora, claim → process → write
        until done, refresh the lemma index; the summary (:class:`IngestAborted` on
        Ctrl-C)."""
        started = time.monotonic()  # (the models are loaded)
        collection = _open(self.store, meta)
        with _closed_after(collection, self.store):
            registered = tuple(_register(collection.catalog, c) for c in self.corpora)
            total = _claimable(collection.catalog, self.names, self.options.limit)
            self.on_progress(IngestProgress("start", total))
            stats, aborted = IngestStats(), False
            if total or self.names is None:  # unrestricted: expired leases, retries may wait
                stats, aborted = self._work(collection, models, total)
            self.on_progress(IngestProgress("end", total, stats.captions, stats.references))
            stopped = aborted or self.should_stop()
            if not stopped:
                _refresh_lemma_index(collection)
            summary = IngestSummary(
                corpora=registered,
                store_captions=collection.catalog.status_counts(),
                store_references=collection.refs.count(),
                stats=stats,
                total=total,
                elapsed_s=time.monotonic() - started,
                interrupted=stopped,
            )
        if aborted:
            raise IngestAborted(summary)
        return summary

    def _work(
        self, collection: Collection, models: IngestModels | WorkerPool | None, total: int
    ) -> tuple[IngestStats, bool]:
        """The claim → process → write loop; its counters and whether Ctrl-C aborted it."""
        from tqdm.contrib.logging import logging_redirect_tqdm

        from fossil.ingest.pool import WorkerPool
        from fossil.ingest.worker import BatchWriter, Claimer, KillSwitch, run_ingest

        options = self.options
        owner = options.owner or lease_owner()
        claimer = Claimer(
            collection, owner, options.batch_size, options.lease_seconds, options.limit,
            corpora=self.names,
        )  # fmt: skip
        writer = BatchWriter(
            collection,
            owner,
            total=total,
            progress=options.progress,
            kill=KillSwitch.from_env(os.environ),
            on_batch=lambda stats: self.on_progress(
                IngestProgress("batch", total, stats.captions, stats.references)
            ),
            lock=self.write_lock,
        )
        aborted = False
        with logging_redirect_tqdm():
            try:
                if isinstance(models, WorkerPool):
                    models.run(claimer, writer, self.should_stop)
                else:
                    run_ingest(
                        models,
                        claimer,
                        writer,
                        template_weight=options.text.template_weight,
                        thumbnail_root=self.thumbnails,
                        should_stop=self.should_stop,
                        process=self.process,
                    )
            except KeyboardInterrupt:
                aborted = True  # the batches in flight were released
            finally:
                writer.close()
        return writer.stats, aborted


def _close_after_error(collection: Collection) -> None:
    """Close ``collection`` while an error unwinds: a second failure (a full disk fails the
    close's flush too) is logged, not chained over the first."""
    try:
        collection.close()
    except Exception as error:  # noqa: BLE001 - the error being raised matters more
        logger.warning("closing the store after an error failed too: %s", error)


def _refresh_lemma_index(collection: Collection) -> None:
    """A routed collection's saved lemma index brought up to date (fossil.query.routing),
    so the next query process does not rebuild it."""
    from fossil.query.routing import refresh_lemma_index

    started = time.monotonic()
    if refresh_lemma_index(collection):
        logger.info("lemma index refreshed in %.1f s", time.monotonic() - started)


def _register(catalog: CatalogStore, corpus: CorpusFile) -> Registered:
    result = catalog.add_corpus(
        corpus.name, corpus.source, corpus.captions, phrase=corpus.phrase, items=corpus.items
    )
    return Registered(
        name=corpus.name,
        read=len(corpus.captions),
        skipped=corpus.skipped + result.skipped,
        added=result.added,
        duplicates=result.duplicates,
    )
