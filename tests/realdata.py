"""Real labelled photos from Debian's ``labelme-examples`` 5.1.1 (GPL-3+, test data only:
never shipped or committed), for tests and benchmarks only.

``scripts/test.sh`` extracts the package once (``apt-get download labelme-examples`` then
``dpkg -x``, no root) into ``$FOSSIL_TEST_CACHE/labelme-examples/examples`` and exports
``FOSSIL_LABELME_EXAMPLES``, the ``examples`` folder (``/usr/share/doc/labelme-examples/
examples`` in the package).  What it holds, relative to that folder:

- **3 VOC2011 photos** with labelme polygons, ``semantic_segmentation/data_annotated/
  2011_000003.{jpg,json}`` (person, bottle; an ``__ignore__`` polygon), ``2011_000006``
  (person, chair, sofa; ``__ignore__``), ``2011_000025`` (bus, car); their VOC export
  ``semantic_segmentation/data_dataset_voc/`` (``SegmentationClassPNG/*.png``, 255 = ignore,
  ``class_names.txt`` = ``_background_`` + the 20 VOC classes, ``diningtable`` and
  ``tv/monitor`` spelled so; its ``JPEGImages`` are re-encoded at low quality: use the
  originals in ``data_annotated``).  ``instance_segmentation/`` holds the same photos with
  instance ``group_id``s and a COCO export ``data_dataset_coco/annotations.json``
  (``file_name`` ``JPEGImages/…`` relative to it, re-encoded too; no ``__ignore__``);
  ``bbox_detection/`` the same photos with rectangles.
- **A street scene**: ``video_annotation/data_annotated/0000010{0..4}.{jpg,json}``, 5
  near-identical 1000×563 frames labelled ``car`` and ``track`` (truck), with a VOC export.
- **An APC shelf photo**: ``tutorial/apc2016_obj3.json`` (1210×907, image embedded as
  ``imageData``; shelf, highland_6539_self_stick_notes, mead_index_cards,
  kong_air_dog_squeakair_tennis_ball) and its label PNG ``tutorial/apc2016_obj3_json/
  label.png`` with ``label_names.txt``.
- ``primitives/primitives.json`` (one shape of each labelme type) and ``classification/``
  (flags only, no shapes).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.realweights import DEFAULT_CACHE, require

ENV = "FOSSIL_LABELME_EXAMPLES"
SYSTEM = Path("/usr/share/doc/labelme-examples/examples")
VOC_PHOTOS = ("2011_000003", "2011_000006", "2011_000025")
STREET_FRAMES = tuple(f"0000010{i}" for i in range(5))
VOC_CLASSES = {
    "2011_000003": ("person", "bottle"),
    "2011_000006": ("person", "chair", "sofa"),
    "2011_000025": ("bus", "car"),
}
APC_CLASSES = (
    "shelf",
    "highland_6539_self_stick_notes",
    "mead_index_cards",
    "kong_air_dog_squeakair_tennis_ball",
)


def labelme_examples_dir() -> Path | None:
    """The ``examples`` folder of labelme-examples: ``$FOSSIL_LABELME_EXAMPLES``, the test
    cache, or the system's copy; None when none holds it."""
    candidates = [os.environ.get(ENV), DEFAULT_CACHE / "labelme-examples" / "examples", SYSTEM]
    for candidate in candidates:
        if candidate and (Path(candidate) / "semantic_segmentation" / "data_annotated").is_dir():
            return Path(candidate)
    return None


def labelme_examples() -> Path:
    """The ``examples`` folder, or skip (fail under ``CI=true``) when it is absent."""
    return require(
        labelme_examples_dir(),
        "Debian's labelme-examples",
        f"scripts/test.sh extracts it and sets {ENV}",
    )
