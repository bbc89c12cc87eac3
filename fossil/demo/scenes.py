"""SYNTHETIC world: held-out test scenes with ground truth, in the ADE20K mmseg layout.

:func:`write_scenes` writes ``count`` scenes under ``root``::

    images/validation/scene_0000.jpg         RGB, JPEG quality 98, no chroma subsampling
    annotations/validation/scene_0000.png    8-bit labels: 0 = ignore, material i → i + 1
    classes.json                             {"classes": [concept names], ...}

so ``reduce_zero_label`` (ADE20K's convention) turns the labels into material indices
``0..C−1``.  The class names are the held-out synonyms (``Material.concept``: "lawn",
"ocean", ...), never the nouns the caption corpus uses.  Scenes are drawn from their own
seed stream, disjoint from the caption-seeded generator images, and every material
appears in at least one scene once ``count · 2 ≥ C``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fossil.demo.render import Scene, render_scene
from fossil.demo.vocabulary import VOCABULARY, Material

IMAGE_DIR = "images/validation"
LABEL_DIR = "annotations/validation"
CLASSES_FILE = "classes.json"
SCENE_STREAM = 0x5CE4E  # second seed word: held-out scenes never share a generator stream


@dataclass(frozen=True)
class SceneSet:
    """What :func:`write_scenes` wrote."""

    root: Path
    class_names: tuple[str, ...]  # concept names, index = label after reduce_zero_label
    names: tuple[str, ...]  # scene file stems


def held_out_scenes(
    count: int,
    seed: int = 0,
    size: int = 256,
    regions: tuple[int, int] = (2, 4),
    vocabulary: Sequence[Material] = VOCABULARY,
) -> list[Scene]:
    """``count`` scenes of ``regions`` (min, max) materials each, deterministic in ``seed``.

    Materials are dealt from shuffled decks of the whole vocabulary, so coverage is even."""
    low, high = regions
    if count < 1:
        raise ValueError(f"count ({count}) must be >= 1")
    if not 1 <= low <= high <= min(len(vocabulary), 6):
        raise ValueError(f"regions ({regions}) must satisfy 1 <= min <= max <= 6")
    rng = np.random.default_rng([seed, SCENE_STREAM])
    deck: list[int] = []
    scenes = []
    for _ in range(count):
        chosen: list[int] = []
        for _ in range(int(rng.integers(low, high + 1))):
            if not deck:
                deck = [int(i) for i in rng.permutation(len(vocabulary))]
            pick = next((i for i in deck if i not in chosen), None)
            if pick is None:  # the deck's rest is all chosen: start a fresh one
                deck = [int(i) for i in rng.permutation(len(vocabulary)) if i not in chosen]
                pick = deck[0]
            deck.remove(pick)
            chosen.append(pick)
        scenes.append(render_scene(chosen, rng, (size, size), vocabulary))
    return scenes


def write_scenes(
    root: Path | str,
    count: int = 30,
    *,
    seed: int = 0,
    size: int = 256,
    regions: tuple[int, int] = (2, 4),
    vocabulary: Sequence[Material] = VOCABULARY,
) -> SceneSet:
    """Render :func:`held_out_scenes` and write them under ``root`` (see module docstring).

    Refuses a ``root`` that already holds scenes, so two worlds never mix."""
    root = Path(root)
    images, labels = root / IMAGE_DIR, root / LABEL_DIR
    for folder in (images, labels):
        if folder.is_dir() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} is not empty; write the scenes to a fresh root")
    if len(vocabulary) > 254:
        raise ValueError(f"{len(vocabulary)} materials do not fit 8-bit labels 1..254")
    scenes = held_out_scenes(count, seed, size, regions, vocabulary)
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    names = tuple(f"scene_{index:04d}" for index in range(count))
    for name, scene in zip(names, scenes, strict=True):
        Image.fromarray(scene.image).save(images / f"{name}.jpg", quality=98, subsampling=0)
        Image.fromarray((scene.labels + 1).astype(np.uint8)).save(labels / f"{name}.png")
    class_names = tuple(m.concept for m in vocabulary)
    meta = {
        "classes": list(class_names),
        "materials": [m.name for m in vocabulary],
        "layout": "ade20k",
        "reduce_zero_label": True,
        "synthetic": True,
        "seed": seed,
    }
    (root / CLASSES_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return SceneSet(root, class_names, names)


def read_class_names(root: Path | str) -> tuple[str, ...]:
    """The concept names written by :func:`write_scenes` under ``root``."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; write the scenes with write_scenes()")
    return tuple(json.loads(path.read_text("utf-8"))["classes"])
