"""Labelled photos into a collection as one library call (design §5.10):
:func:`ingest_labelled`, what ``fossil ingest --labelled PATH`` runs.

The set is read and checked whole first (:func:`fossil.ingest.labelled.read_labelled`: every
image decoded, every mask rasterised), so bad input raises before the store is touched.
Then it runs as caption corpora do (:class:`fossil.pipeline.ingest.IngestRun`): the
(photo, class) items (or (photo, instance) items, ``unit="instance"``) are registered as
the caption rows of corpus ``labelled:<name>``, claimed in batches, turned into references
(:func:`fossil.ingest.labelled_refs.process_labelled`) and written in the design §4 order, so a
killed run resumes with the same point ids and a rerun adds nothing.  No generator is
loaded: the text, dense and noun-parser roles are, and they must match the collection's (a
new store records no generator until its first generated references).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fossil.db.protocols import CaptionJob, Collection, CollectionMeta
from fossil.db.schema import SCHEMA_VERSION
from fossil.ingest.corpora import CorpusFile
from fossil.ingest.labelled import read_labelled
from fossil.ingest.labelled_refs import (
    LabelledItem,
    LabelledModels,
    labelled_corpus,
    labelled_items,
    process_labelled,
)
from fossil.ingest.references import BatchResult
from fossil.pipeline.ingest import (
    IngestProgress,
    IngestRun,
    IngestSummary,
    store_profile,
)
from fossil.pipeline.ingest_config import IngestOptions, ModelChoice, StoreAddress

DEFAULT_UNIT = "class"  # one reference per (photo, class): docs/labelled-photos.md, issue 23


@dataclass(frozen=True)
class LabelledCorpus:
    """A labelled set read and checked, ready to ingest: its corpus (one caption row per
    (photo, class), keyed) and its items by key."""

    corpus: CorpusFile
    items: Mapping[str, LabelledItem]
    format: str
    photos: int
    notes: tuple[str, ...] = ()
    unit: str = "class"  # what one reference is: "class" or "instance" (as the set was read)


def read_labelled_corpus(
    path: str | Path,
    *,
    name: str | None = None,
    images: str | Path | None = None,
    with_background: bool = False,
    unit: str | None = None,
    progress: bool = False,
) -> LabelledCorpus:
    """The labelled set at ``path`` (labelme JSON file or folder, COCO instances JSON, VOC
    folder: :func:`fossil.ingest.labelled.detect_format`) as corpus ``labelled:<name>``
    (``name``: default the file's stem or the folder's name).  ``unit``: one reference per
    (photo, class) or per (photo, instance), default :data:`DEFAULT_UNIT`
    (``docs/labelled-photos.md`` has the measurement that picked it).  Raises
    :class:`~fossil.ingest.labelled.LabelledError` (one line naming the file and the item)."""
    labelled = read_labelled(
        path,
        images=images,
        with_background=with_background,
        unit=unit or DEFAULT_UNIT,
        progress=progress,
    )
    corpus = labelled_corpus(name or Path(path).resolve().stem)
    items = labelled_items(labelled, corpus)
    return LabelledCorpus(
        corpus=CorpusFile(
            name=corpus,
            source=labelled.root,
            format=f"labelled-{labelled.format}",
            captions=tuple(item.caption for item in items),
            items=tuple((item.key, item.concept) for item in items),
        ),
        items={item.key: item for item in items},
        format=labelled.format,
        photos=len(labelled.photos),
        notes=labelled.notes,
        unit=labelled.unit,
    )


def labelled_meta(models: LabelledModels) -> CollectionMeta:
    """The ``collection_meta`` labelled references need: the text and dense encoders; no
    generator (``""``: a store opened with it keeps the generator it has)."""
    return CollectionMeta(
        text_encoder=models.text.name,
        text_dim=int(models.text.dim),
        dense_encoder=models.dense.name,
        visual_dim=int(models.dense.dim),
        generator="",
        generation_fingerprint="",
        schema_version=SCHEMA_VERSION,
    )


def ingest_labelled(
    store: StoreAddress | Collection,
    labelled: LabelledCorpus,
    models: LabelledModels | ModelChoice | None = None,
    options: IngestOptions | None = None,
    *,
    on_progress: Callable[[IngestProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IngestSummary:
    """Register ``labelled`` in ``store`` and turn its pending items into references (only
    this set's: ``options.only_given`` is implied).  ``models``: loaded models, or what to
    load (:class:`ModelChoice`; its profile's text, dense and noun-parser roles; default: the
    models the store records, else the paper's).  Resumable and idempotent."""
    options = replace(options or IngestOptions(), only_given=True)
    items = labelled.items

    def process(jobs: Sequence[CaptionJob], weight: float, root: Path | None) -> BatchResult:
        return process_labelled(loaded, jobs, items, template_weight=weight, thumbnail_root=root)

    if isinstance(models, ModelChoice) or models is None:
        choice = models or ModelChoice()
        if choice.workers != 1:
            raise ValueError(
                f"workers ({choice.workers}): labelled photos are ingested in one process "
                "(no generator: the dense encoder is the cost)"
            )
        from fossil.models.loading import command_roles, load_models

        loaded: LabelledModels = load_models(
            store_profile(store, choice.profile), device=choice.devices[0],
            roles=command_roles("labelled"),
        )  # fmt: skip
    else:
        loaded = models
    run = IngestRun(store, [labelled.corpus], options, on_progress, should_stop, process)
    return run.execute(labelled_meta(loaded), None)
