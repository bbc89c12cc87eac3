"""The read session of a command (:class:`fossil.pipeline.session.ReadSession`) from its
flags: the store of --store / --qdrant-url / --catalog, the models of --models / --device (the
synthetic world's for a `fossil demo` store) and the command's config, built from the settings
the collection records.  Also ``--extend``'s messages, which name the flag."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fossil.commands._options import load_command_models, store_address, store_settings

if TYPE_CHECKING:
    from fossil.config import CollectionSettings, FossilConfig
    from fossil.db.protocols import Collection
    from fossil.models.loading import ModelBundle
    from fossil.pipeline.extend import Extension
    from fossil.pipeline.ingest import IngestProgress
    from fossil.pipeline.session import ReadCaches, ReadSession
    from fossil.query.coverage import Coverage


def open_session(
    args: argparse.Namespace,
    command: str,
    config: Callable[[CollectionSettings | None], FossilConfig],
    *,
    extend: bool = False,
    caches: ReadCaches | None = None,
    build_now: bool = False,
    writes: bool = False,
) -> ReadSession:
    """The session of ``command`` on the flags' store: ``config`` from the settings the
    collection records (:func:`store_settings`: a demo store's, also when it recorded none),
    the models it needs (``extend``: with the generator's roles), all built at once with
    ``build_now`` (a server), else each on first use.  With ``extend`` or ``writes`` (a
    server that runs ingest jobs) the session will ingest: an embedded store hands back the
    leases a dead run left when it opens (:func:`fossil.db.open.open_collection`)."""
    from fossil.pipeline.session import ReadCaches, ReadSession

    def models(collection: Collection, chosen: FossilConfig) -> ModelBundle:
        bundle = load_command_models(args, command, collection, extend=extend, sizes=chosen.eval)
        return bundle.load() if build_now else bundle

    return ReadSession.open(
        store_address(args),
        config,
        models,
        command=command,
        extend=extend,
        caches=caches if caches is not None else ReadCaches(),
        settings=store_settings,
        release_stale_leases=extend or writes,
    )


def coverage_or_extend(
    session: ReadSession, concepts: Sequence[str], per_concept: int | None
) -> tuple[list[Coverage], Extension | None]:
    """The concepts' coverage; with --extend (``per_concept`` given) the uncovered ones get
    references first (:meth:`ReadSession.extend`, its progress on stderr), and the coverage is
    the one after that."""
    if per_concept is None:
        return session.coverage(concepts), None
    from fossil.db.open import MetaMismatchError

    try:
        extension = session.extend(concepts, per_concept, on_progress=_print_extend_message)
    except MetaMismatchError as error:
        raise ValueError(f"--extend: {error}") from None
    return extension.after, extension


def _print_extend_message(progress: IngestProgress) -> None:
    if progress.message:
        print(f"--extend: {progress.message}", file=sys.stderr)
