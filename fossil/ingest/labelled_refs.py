"""References from labelled photos (design §5.10, fossil's addition to the paper).

A reference is a noun's region in an image, embedded.  A labelled photo gives one directly:
its ground-truth mask replaces the heat-map mask of a generated image, and the rest is the
generated references' path — the VRE is eq. 4 (:func:`fossil.segment.pooling.region_pool`) on
the collection's dense encoder's features of the photo, the TRE is design §5.5's mix of the class
name's 7 templates (weight 0.9) and a caption (weight 0.1), the thumbnail is the photo with
the mask (:mod:`fossil.ingest.thumbnails`), the write is the design §4 order of
:class:`fossil.ingest.worker.BatchWriter`.

**One reference per (photo, class)** by default (``unit="class"``): the union of the
class's shapes or instances in that photo.  With ``unit="instance"`` (where the format
carries instances: :func:`fossil.ingest.labelled.read_labelled`) one reference per
(photo, instance).  Which is the default was measured (``docs/labelled-photos.md``).

**Identity.**  Each (photo, class) is one caption row of the corpus ``labelled:<name>``
whose key (:func:`item_key`) is the sha256 of the corpus, the photo's key in its set and the
class's concept (and, for an instance, its id in the photo: ``"shape 3"``,
``"annotation 12"``, ``"object 2"``, so instance keys never meet class keys): a rerun of the
same set under the same name registers nothing new, and the point id is
:func:`fossil.records.point_id` of that key, so a killed ingest resumes with the same ids
(the caption rows are leased and completed as caption corpora's are).

**Class names** are normalised as concepts are (:mod:`fossil.concepts`: whitespace
collapsed), after these rules, applied in order (:func:`class_concept`): underscores become
spaces; a lower→upper case change splits words (``pottedPlant``); the name is lowercased; a
name without spaces that spells a multi-word class of the benchmarks fossil ships
(``fossil/data/benchmark_classes.json``) or of the same labelled set with its spaces removed
takes that spelling (``diningtable`` → ``dining table``, ``pottedplant`` → ``potted plant``,
``tvmonitor`` stays: no benchmark says ``tv monitor``).  So ``diningtable`` and ``dining
table`` meet: same TRE, same noun lemma.

**Caption**: the one the annotation file carries, else one built from the photo's classes
(:func:`photo_caption`: "a photo of a person, a chair and a dining table").

**Payload**: besides the generated references' keys, ``source`` (``"labelled"``; generated
points have none, :func:`reference_source`), ``labelled_file`` (the photo's key in its set:
the annotation file relative to the set's root), ``labelled_instance`` (an instance's id in
its photo; absent for a class's union) and ``caption_hash`` (the caption row's key, which is
not the hash of its text, so ``fossil store check --repair`` can rebuild it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fossil.concepts import check_concept
from fossil.db.protocols import CaptionJob
from fossil.ingest.labelled import LabelledError, LabelledPhoto, LabelledSet
from fossil.ingest.references import (
    TEMPLATE_WEIGHT,
    BatchResult,
    CaptionRefs,
    IngestStats,
    LabelledModels,
    Region,
    add_reference,
    batch_result,
)
from fossil.models.nouns import phrase_lemma
from fossil.models.protocols import NounParser
from fossil.models.text import retrieval_embeddings
from fossil.records import LABELLED_PREFIX, SOURCE_LABELLED, point_id
from fossil.segment.pooling import region_pool

FINGERPRINT = "labelled-photo"  # third part of a labelled reference's point id
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def labelled_corpus(name: str) -> str:
    """The corpus name of labelled set ``name``: ``labelled:<name>``."""
    text = " ".join(str(name).split())
    if not text:
        raise ValueError(f"labelled set name ({name!r}) is empty")
    return text if text.startswith(LABELLED_PREFIX) else LABELLED_PREFIX + text


@lru_cache(maxsize=1)
def _benchmark_compounds() -> dict[str, str]:
    """Joined spelling → spaced spelling of every multi-word benchmark class."""
    data = json.loads(
        resources.files("fossil").joinpath("data/benchmark_classes.json").read_text("utf-8")
    )
    names = {" ".join(c.split()).lower() for d in data.values() for c in d["classes"]}
    return {n.replace(" ", ""): n for n in names if " " in n}


def class_concept(name: str, siblings: Iterable[str] = ()) -> str:
    """The concept a class name stands for (the module's rules); ``siblings``: the other
    class names of the same set, already normalised, whose spaced spellings also count.
    Raises ``ValueError`` for a name that is no valid concept (empty, a comma, too long)."""
    text = " ".join(_CAMEL.sub(" ", str(name).replace("_", " ")).split()).lower()
    if text and " " not in text:
        compounds = {s.replace(" ", ""): s for s in siblings if " " in s}
        text = compounds.get(text) or _benchmark_compounds().get(text) or text
    return check_concept(text, "class name")


def set_concepts(names: Iterable[str]) -> dict[str, str]:
    """Class name → concept for the class names of one set (siblings taken into account)."""
    names = list(dict.fromkeys(names))
    first = {n: class_concept(n) for n in names}
    spaced = [c for c in first.values() if " " in c]
    return {n: class_concept(n, spaced) for n in names}


def item_key(corpus: str, photo_key: str, concept: str, instance: str = "") -> str:
    """The caption-row key of one (photo, class) of a labelled corpus, or of one instance
    of it (``instance``: its id in the photo, ``""`` for the class): 64 hex digits."""
    parts = ["labelled", corpus, photo_key, concept.lower()]
    if instance:
        parts += ["instance", instance]
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def photo_caption(concepts: Sequence[str]) -> str:
    """A caption built from a photo's classes: "a photo of a dog, a cat and a sofa"."""
    named = [f"a {c}" for c in dict.fromkeys(concepts)]
    if not named:
        return "a photo"
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"a photo of {listed}"


@dataclass(frozen=True)
class LabelledItem:
    """One (photo, class) or (photo, instance) of a labelled set: the makings of one
    reference."""

    key: str  # item_key: the caption row's text_hash
    photo: LabelledPhoto
    class_name: str  # as the file writes it
    concept: str  # class_concept
    caption: str  # the TRE's caption (the file's, else photo_caption)
    instance: str = ""  # the instance's id in its photo; "" for a class's union


def labelled_items(labelled: LabelledSet, corpus: str) -> list[LabelledItem]:
    """Every (photo, class) of ``labelled`` (or (photo, instance), as it was read) as an
    item of ``corpus``, in photo order.  Refuses (``LabelledError`` naming the file and
    class) a class name that is no concept and two classes of one photo that name the same
    concept (two instances with one id)."""
    for photo in labelled.photos:  # a bad name is refused naming its file
        for name in photo.classes:
            try:
                class_concept(name)
            except ValueError as error:
                raise LabelledError(photo.source, f"class {name!r}", str(error)) from None
    concepts = set_concepts(c for p in labelled.photos for c in p.classes)
    items = []
    for photo in labelled.photos:
        caption = photo.caption or photo_caption([concepts[c] for c in photo.classes])
        seen: dict[tuple[str, str], str] = {}
        instances = photo.instances or ("",) * len(photo.classes)
        for name, instance in zip(photo.classes, instances, strict=True):
            concept = concepts[name]
            if (concept, instance) in seen:
                what = f" {instance}" if instance else ""
                raise LabelledError(
                    photo.source,
                    f"classes {seen[concept, instance]!r} and {name!r}{what}",
                    f"both mean the concept {concept!r}: merge them in the file",
                )
            seen[concept, instance] = name
            key = item_key(corpus, photo.key, concept, instance)
            items.append(LabelledItem(key, photo, name, concept, caption, instance))
    return items


def process_labelled(
    models: LabelledModels,
    jobs: Sequence[CaptionJob],
    items: Mapping[str, LabelledItem],
    *,
    template_weight: float = TEMPLATE_WEIGHT,
    thumbnail_root: str | Path | None = None,
) -> BatchResult:
    """References of leased labelled jobs (``items`` by caption key): each photo read once,
    one dense-encoder call for the batch's photos, one text call for its TREs; a job that
    fails alone is recorded with its error (:func:`fossil.ingest.references.batch_result`)."""
    return batch_result(
        jobs, lambda group: _labelled_group(models, group, items, template_weight, thumbnail_root)
    )


def _labelled_group(
    models: LabelledModels,
    jobs: Sequence[CaptionJob],
    items: Mapping[str, LabelledItem],
    template_weight: float,
    root: str | Path | None,
) -> list[CaptionRefs]:
    unknown = [job.text_hash for job in jobs if job.text_hash not in items]
    if unknown:
        raise LabelledError(
            jobs[0].corpus,
            f"{len(unknown)} registered items",
            "not in the labelled set given to this run (files changed since it registered "
            "them?): give the set and the name that run was given",
        )
    wanted = [items[job.text_hash] for job in jobs]
    photos = {item.photo.key: item.photo for item in wanted}  # each photo read once
    loaded = {}
    for key, photo in photos.items():
        image, regions, _ = photo.load()
        loaded[key] = (image, {(region.name, region.instance): region.mask for region in regions})
    row = {key: b for b, key in enumerate(photos)}
    features = models.dense.features([loaded[key][0] for key in photos])  # (B, h, w, dim)
    if features.ndim != 4 or len(features) != len(photos):
        raise RuntimeError(f"dense features have shape {features.shape}; expected (B, h, w, dim)")
    lemmas = _lemmas(models.nouns, [item.concept for item in wanted])
    tre = retrieval_embeddings(
        models.text,
        [item.concept for item in wanted],
        [item.caption for item in wanted],
        template_weight=template_weight,
    )  # (R, dim) design §5.5
    outcomes = []
    for job, item, lemma, text in zip(jobs, wanted, lemmas, tre, strict=True):
        image, masks = loaded[item.photo.key]
        mask = masks.get((item.class_name, item.instance))
        if mask is None or not mask.any():
            what = f"class {item.class_name!r}" + (f" {item.instance}" if item.instance else "")
            raise LabelledError(item.photo.source, what, "empty mask")
        visual = region_pool(features[row[item.photo.key]], mask[None])[0]  # eq. 4
        region = Region(item.concept, lemma, image, mask, float(mask.mean()), visual)
        refs = CaptionRefs([], [], IngestStats(captions=1))
        extra = {
            "source": SOURCE_LABELLED,
            "labelled_file": item.photo.key,
            "caption_hash": job.text_hash,
        }
        if item.instance:
            extra["labelled_instance"] = item.instance
        add_reference(refs, job, point_id(job.text_hash, 0, FINGERPRINT), region, text, root, extra)
        outcomes.append(refs)
    return outcomes


def _lemmas(parser: NounParser, concepts: Sequence[str]) -> list[str]:
    """Each concept's noun lemma, as the parser gives it for the phrase alone."""
    unique = list(dict.fromkeys(concepts))
    parsed = parser.parse(unique)
    lemma = {c: phrase_lemma(c, nouns) for c, nouns in zip(unique, parsed, strict=True)}
    return [lemma[c] for c in concepts]
