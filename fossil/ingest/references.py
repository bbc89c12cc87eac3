"""References of leased captions (design §2, §5.3–§5.5): nouns → generate → masks → VRE/TRE.

:func:`process_batch` is the compute half of ingest, with no store access (it runs in the
worker processes with ``--workers``); it also writes the reference thumbnails, which are
files named by point id, so rerunning a batch rewrites the same files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from fossil.config import TextConfig
from fossil.db.protocols import CaptionJob, CollectionMeta, ReferenceRow
from fossil.ingest.thumbnails import write_thumbnail
from fossil.models.nouns import phrase_lemma, phrase_noun
from fossil.models.protocols import DenseEncoder, Generator, NounParser, TextEncoder
from fossil.models.text import retrieval_embeddings
from fossil.records import GeneratedImage, Noun, ReferencePoint, point_id
from fossil.segment.pooling import region_pool

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 1000
TEMPLATE_WEIGHT = TextConfig().template_weight  # design §5.5 default, 0.9


class LabelledModels(Protocol):
    """What references from labelled photos need of a model bundle (no generator:
    :mod:`fossil.ingest.labelled_refs`)."""

    @property
    def nouns(self) -> NounParser: ...

    @property
    def text(self) -> TextEncoder: ...

    @property
    def dense(self) -> DenseEncoder: ...


class IngestModels(LabelledModels, Protocol):
    """What ingest needs of a model bundle (:class:`fossil.models.loading.ModelBundle`, whose
    roles are read-only properties built on first use)."""

    @property
    def generator(self) -> Generator: ...


def collection_meta(models: IngestModels, schema_version: int) -> CollectionMeta:
    """What a collection built by ``models`` records in ``collection_meta`` (design §4)."""
    return CollectionMeta(
        text_encoder=models.text.name,
        text_dim=int(models.text.dim),
        dense_encoder=models.dense.name,
        visual_dim=int(models.dense.dim),
        generator=models.generator.name,
        generation_fingerprint=models.generator.fingerprint,
        schema_version=schema_version,
    )


@dataclass
class IngestStats:
    """Counters of an ingest run; ``+=`` merges batches."""

    captions: int = 0  # captions completed (done), with or without references
    without_nouns: int = 0  # done with zero references: the parser found no noun
    failures: int = 0  # failed attempts recorded in the catalog (retried up to its limit)
    references: int = 0  # references written
    empty_masks: int = 0  # located nouns whose mask was empty: no reference
    not_located: int = 0  # nouns the generator could not locate (e.g. truncated at 77 tokens)
    repeated_nouns: int = 0  # a noun repeated in its caption: one reference for the first
    mask_area_sum: float = 0.0  # over written references, fraction of the image
    mask_area_min: float = 1.0
    mask_area_max: float = 0.0

    def __iadd__(self, other: IngestStats) -> IngestStats:
        for f in fields(self):
            if f.name == "mask_area_min":
                self.mask_area_min = min(self.mask_area_min, other.mask_area_min)
            elif f.name == "mask_area_max":
                self.mask_area_max = max(self.mask_area_max, other.mask_area_max)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def add_area(self, area: float) -> None:
        self.mask_area_sum += area
        self.mask_area_min = min(self.mask_area_min, area)
        self.mask_area_max = max(self.mask_area_max, area)

    @property
    def mask_area_mean(self) -> float:
        return self.mask_area_sum / self.references if self.references else 0.0


@dataclass
class BatchResult:
    """The outcome of one leased batch, ready to write."""

    jobs: tuple[CaptionJob, ...]
    points: list[ReferencePoint] = field(default_factory=list)
    rows: list[ReferenceRow] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # caption ids to mark done
    failed: list[tuple[int, str]] = field(default_factory=list)  # (caption id, error)
    stats: IngestStats = field(default_factory=IngestStats)


@dataclass
class CaptionRefs:
    points: list[ReferencePoint]
    rows: list[ReferenceRow]
    stats: IngestStats


GroupFn = Callable[[Sequence[CaptionJob]], list["CaptionRefs"]]


def process_batch(
    models: IngestModels,
    jobs: Sequence[CaptionJob],
    *,
    template_weight: float = TEMPLATE_WEIGHT,
    thumbnail_root: str | Path | None = None,
) -> BatchResult:
    """References of leased captions: all captions in one batched pass; if that raises,
    each caption alone, so one bad caption fails alone (recorded with its error).
    ``thumbnail_root``: store directory to write thumbnails under, or None for none."""
    return batch_result(
        jobs, lambda group: _process_group(models, group, template_weight, thumbnail_root)
    )


def batch_result(jobs: Sequence[CaptionJob], group: GroupFn) -> BatchResult:
    """``group(jobs)`` (all-or-nothing references of the jobs) as a :class:`BatchResult`;
    when it raises, each job alone, so one bad job fails alone (recorded with its error)."""
    result = BatchResult(jobs=tuple(jobs))
    try:
        outcomes: list[CaptionRefs | str] = list(group(jobs))
    except Exception as error:
        if len(jobs) == 1:
            outcomes = [_describe_error(error)]
        else:
            logger.warning("batch of %d failed (%s); retrying caption by caption", len(jobs), error)
            outcomes = [_process_one(group, job) for job in jobs]
    for job, outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, str):
            result.failed.append((job.id, outcome))
            result.stats.failures += 1
        else:
            result.done.append(job.id)
            result.points += outcome.points
            result.rows += outcome.rows
            result.stats += outcome.stats
    return result


def _process_one(group: GroupFn, job: CaptionJob) -> CaptionRefs | str:
    try:
        return group([job])[0]
    except Exception as error:
        debug = logger.isEnabledFor(logging.DEBUG)
        logger.warning("caption %d failed: %s", job.id, error, exc_info=debug)
        return _describe_error(error)


def _describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]


def _unique_nouns(nouns: Sequence[Noun]) -> tuple[list[int], int]:
    """Indices of the first occurrence of each noun text (case-insensitive), and how many
    repeats were dropped: a repeated word has one heat map (design §5.2), so one reference."""
    seen: set[str] = set()
    keep = []
    for index, noun in enumerate(nouns):
        if noun.text.lower() not in seen:
            seen.add(noun.text.lower())
            keep.append(index)
    return keep, len(nouns) - len(keep)


def _parse(parser: NounParser, texts: Sequence[str]) -> list[list[Noun]]:
    parsed = parser.parse(list(texts))
    if len(parsed) != len(texts):
        raise RuntimeError(f"noun parser returned {len(parsed)} results for {len(texts)} texts")
    return parsed


def job_nouns(parser: NounParser, jobs: Sequence[CaptionJob]) -> list[list[Noun]]:
    """The nouns to locate per caption: the parsed nouns, or for a caption registered with
    a phrase (a concept corpus) that phrase alone, as one noun span with the phrase's lemma
    (none when the caption does not contain it)."""
    out: list[list[Noun]] = [[] for _ in jobs]
    plain = [i for i, job in enumerate(jobs) if job.phrase is None]
    for i, nouns in zip(plain, _parse(parser, [jobs[i].text for i in plain]), strict=True):
        out[i] = nouns
    phrased = [i for i, job in enumerate(jobs) if job.phrase is not None]
    phrases = [" ".join(str(jobs[i].phrase).split()) for i in phrased]
    for i, phrase, nouns in zip(phrased, phrases, _parse(parser, phrases), strict=True):
        noun = phrase_noun(jobs[i].text, phrase, phrase_lemma(phrase, nouns))
        if noun is None:
            logger.warning("caption %d does not contain its phrase %r", jobs[i].id, phrase)
        out[i] = [] if noun is None else [noun]
    return out


@dataclass(frozen=True)
class _Located:
    """A noun with a non-empty mask: the makings of one reference."""

    caption: int  # index into the jobs
    image: GeneratedImage
    noun_index: int  # index of the noun in the parser's list for its caption (point id)
    noun: Noun
    mask: np.ndarray  # (H, W) bool
    area: float  # fraction of the image
    visual: np.ndarray  # (dim,) VRE, eq. 4


def _process_group(
    models: IngestModels,
    jobs: Sequence[CaptionJob],
    template_weight: float,
    root: str | Path | None,
) -> list[CaptionRefs]:
    """All-or-nothing references of ``jobs`` (one batched call per model)."""
    parsed = job_nouns(models.nouns, jobs)
    outcomes = [CaptionRefs([], [], IngestStats(captions=1)) for _ in jobs]
    todo = [i for i, nouns in enumerate(parsed) if nouns]
    for i, nouns in enumerate(parsed):
        outcomes[i].stats.without_nouns = int(not nouns)
    if not todo:
        return outcomes
    unique = {i: _unique_nouns(parsed[i]) for i in todo}
    images = models.generator.generate(
        [jobs[i].text for i in todo], [[parsed[i][k] for k in unique[i][0]] for i in todo]
    )
    if len(images) != len(todo):
        raise RuntimeError(f"generator returned {len(images)} images for {len(todo)} captions")
    features = models.dense.features([image.image for image in images])  # (B, h, w, dim)
    if features.ndim != 4 or len(features) != len(images):
        raise RuntimeError(f"dense features have shape {features.shape}; expected (B, h, w, dim)")
    located: list[_Located] = []
    for b, i in enumerate(todo):
        outcomes[i].stats.repeated_nouns = unique[i][1]
        located += _locate(i, parsed[i], images[b], features[b], outcomes[i].stats)
    if not located:
        return outcomes
    tre = retrieval_embeddings(
        models.text,
        [r.noun.text for r in located],
        [jobs[r.caption].text for r in located],
        template_weight=template_weight,
    )  # (R, dim) design §5.5
    for r, text in zip(located, tre, strict=True):
        job = jobs[r.caption]
        pid = point_id(job.text_hash, r.noun_index, models.generator.fingerprint)
        region = Region(r.noun.text, r.noun.lemma, r.image.image, r.mask, r.area, r.visual)
        add_reference(outcomes[r.caption], job, pid, region, text, root)
    return outcomes


@dataclass(frozen=True)
class Region:
    """A noun's region in an image, embedded: what one reference is made of (a generated
    image and a heat-map mask, or a labelled photo and its ground-truth mask)."""

    noun: str
    lemma: str
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool
    area: float  # fraction of the image
    visual: np.ndarray  # (dim,) VRE, eq. 4


def add_reference(
    refs: CaptionRefs,
    job: CaptionJob,
    pid: str,
    region: Region,
    text: np.ndarray,
    root: str | Path | None,
    extra: dict[str, str] | None = None,
) -> None:
    """One reference of ``job`` into ``refs``: its point (TRE ``text``, the region's VRE, the
    payload ``extra`` adds to), its catalog row and its thumbnail (under ``root``)."""
    thumb = None if root is None else write_thumbnail(root, pid, region.image, region.mask)
    payload = {
        "caption_id": job.id,
        "noun": region.noun,
        "noun_lemma": region.lemma,
        "corpus": job.corpus,
        "mask_area": region.area,
        "caption": job.text,  # so `fossil store check --repair` can rebuild a lost catalog
        **(extra or {}),
    }
    refs.points.append(ReferencePoint(pid, text.astype(np.float32), region.visual, payload))
    refs.rows.append(ReferenceRow(pid, job.id, region.noun, region.lemma, region.area, thumb))
    refs.stats.references += 1
    refs.stats.add_area(region.area)


def _locate(
    caption: int,
    nouns: Sequence[Noun],
    image: GeneratedImage,
    features: np.ndarray,
    stats: IngestStats,
) -> list[_Located]:
    """The nouns of one generated image that have a non-empty mask, with their VREs
    (``features`` (h, w, dim)); counts nouns not located and empty masks into ``stats``."""
    stats.not_located = len(image.skipped)
    if not image.nouns:
        return []
    if len(image.masks) != len(image.nouns) or image.masks.shape[1:] != image.image.shape[:2]:
        raise RuntimeError(
            f"generator returned masks of shape {image.masks.shape} for "
            f"{len(image.nouns)} nouns on an image of shape {image.image.shape}"
        )
    areas = image.masks.reshape(len(image.masks), -1).mean(axis=1)  # (n,) image fraction
    keep = [k for k, area in enumerate(areas) if area > 0]
    stats.empty_masks = len(image.nouns) - len(keep)
    if not keep:
        return []
    vre = region_pool(features, image.masks[keep])  # (L, dim) eq. 4
    index = {noun: n for n, noun in enumerate(nouns)}
    out = []
    for row, k in enumerate(keep):
        noun = image.nouns[k]
        if noun not in index:
            raise RuntimeError(f"generator returned noun {noun.text!r} not in the caption")
        out.append(
            _Located(caption, image, index[noun], noun, image.masks[k], float(areas[k]), vre[row])
        )
    return out
