"""Labelled photos (design §5.10): read and validate labelme, COCO and VOC-style annotations.

Pure file reading: no store, no model.  :func:`read_labelled` reads a whole set, decoding
every image once and rasterising every mask, and raises :class:`LabelledError` (one line:
``"<file>: <item>: <problem>"``) on the first bad item, so a caller can check a set before
writing anything; it returns :class:`LabelledPhoto` records whose ``load()`` re-reads the
files.  Each photo gives one :class:`LabelledRegion` per class: the union of that class's
shapes or instances, ignore pixels removed.

Formats, recognised from the path (:func:`detect_format`):

- **labelme** — one ``.json`` file with a ``shapes`` list, or a folder of them (the
  ``*.json`` directly inside it, not its sub-folders).  The image is the embedded
  ``imageData`` (base64; it wins, as in labelme) or the file at ``imagePath``, relative to the
  JSON file (EXIF orientation applied, as labelme shows it); ``imageHeight``/``imageWidth``
  must match it.  Shapes are rasterised in file order, later shapes over earlier ones, as
  labelme's ``shapes_to_label`` does (Pillow ``ImageDraw``, ``outline=1, fill=1``):
  ``polygon`` (3+ points), ``rectangle`` (the box between its two points), ``circle``
  (centre, then a point of the rim; filled), and labelme ≥ 5.3's ``mask`` (a base64 PNG of
  the box between its two points).  ``line``, ``linestrip``, ``point`` and unknown shape
  types are strokes, not regions: skipped with a note.  Label ``__ignore__`` marks pixels
  to ignore; ``_background_`` paints the background class.  Caption: a top-level
  ``caption`` or ``description`` text, else a text under ``flags["caption"]``.
- **coco** — a COCO instances ``.json`` (``images``, ``annotations``, ``categories``).
  Images are ``file_name`` relative to the JSON file's folder, or to ``images`` when given
  (pixels as stored: no EXIF rotation, as the COCO API).  Segmentations are polygon lists
  (drawn as labelme draws polygons; the COCO API's own rasteriser differs on the boundary:
  587 vs 586 pixels, IoU 0.95, on a 30×25 px quadrilateral) or RLE objects, uncompressed
  (``counts`` a list) or compressed (``counts`` the COCO string), decoded here without
  pycocotools (checked against its output); ``iscrowd`` annotations count as their class.
  A class's region is the union of its instances (so regions of different classes may
  overlap); a category named ``__ignore__`` marks pixels to ignore.  Images without
  annotations are skipped with a note.  Caption: the image record's ``caption`` text.
- **voc** — a folder with ``JPEGImages/`` and ``SegmentationClass/`` or
  ``SegmentationClassPNG/`` holding class-id PNGs (palette *indices* or grey values, never
  colours; 255 is ignore) and ``class_names.txt``, one name a line, id 0 the background (a
  first ``__ignore__`` line, as in labelme's labels file, is skipped and the ids count from
  the line after it).  A PNG's photo is ``JPEGImages/<stem>`` (``.jpg``, ``.jpeg``,
  ``.png``, ...).  No captions.

Rules common to all three:

- The background is kept only with ``with_background=True``: the pixels no class and no
  ignore covers (labelme, COCO: named ``_background_``), or class id 0 (VOC: named by its
  line).  It comes first among a photo's regions; the other classes follow in first-seen
  order (shape order, annotation order, VOC: ascending class id).
- Class names are as written, stripped, not otherwise normalised.
- A photo left without a region (no shapes, only ignore or background) is skipped with a
  set note.
- Errors: a missing or unreadable image; a mask or declared size that differs from its
  image; a class id without a name (VOC); a shape, instance or class that covers no pixel;
  a corrupt JSON; a COCO annotation whose image or category does not exist; two photos
  resolving to the same image file.  A shape partly outside the image (a point beyond
  ``[0, W] × [0, H]``) is clipped, with a note; one wholly outside covers no pixel, an
  error.
- Keys: labelme — the JSON's path relative to the parent of the folder given (or of the
  given file's folder: ``data_annotated/2011_000003.json`` either way); COCO —
  ``"<that of the JSON>#<file_name>"``; VOC — the PNG's path relative to the folder given
  (``SegmentationClassPNG/2011_000003.png``).  ``LabelledSet.photos`` is sorted by key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from fossil.errors import naming

from . import coco, labelme, voc
from .common import key_of, load_json
from .records import (
    UNITS,
    Decoded,
    LabelledError,
    LabelledPhoto,
    LabelledRegion,
    LabelledSet,
    check_unit,
    photo_from,
)

__all__ = [
    "FORMATS",
    "LabelledError",
    "LabelledPhoto",
    "LabelledRegion",
    "LabelledSet",
    "UNITS",
    "detect_format",
    "read_labelled",
]

logger = logging.getLogger(__name__)

FORMATS = ("labelme", "coco", "voc")
EXPECTED = (
    "expected a labelme JSON file or a folder of them, a COCO instances JSON file, or a "
    "VOC-style folder (JPEGImages/ with SegmentationClass/ or SegmentationClassPNG/)"
)

Job = tuple[str, str, Callable[[], Decoded]]  # key, source, reader


def detect_format(path: str | Path) -> str:
    """``"labelme"``, ``"coco"`` or ``"voc"``, from what is at ``path``."""
    return _detect(Path(path).expanduser().absolute())[0]


def _detect(root: Path) -> tuple[str, Any]:
    """The format and, for a JSON file, its parsed document (read once)."""
    if root.is_dir():
        if voc.is_voc(root):
            return "voc", None
        if labelme.json_files(root):
            return "labelme", None
        raise LabelledError(str(root), "folder", f"no *.json files and no JPEGImages/; {EXPECTED}")
    if not root.is_file():
        raise LabelledError(str(root), "path", f"does not exist; {EXPECTED}")
    if root.suffix.lower() != ".json":
        raise LabelledError(str(root), "file", f"not a .json file; {EXPECTED}")
    doc = load_json(root)
    if isinstance(doc, dict) and isinstance(doc.get("shapes"), list):
        return "labelme", doc
    if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
        return "coco", doc
    raise LabelledError(
        str(root),
        "document",
        f"neither labelme ('shapes') nor COCO ('images', 'annotations'); {EXPECTED}",
    )


def read_labelled(
    path: str | Path,
    *,
    images: str | Path | None = None,
    with_background: bool = False,
    unit: str = "class",
    progress: bool = False,
) -> LabelledSet:
    """Reads AND VALIDATES everything (decodes every image once and rasterises every mask,
    then drops the arrays), raising :class:`LabelledError` on the first bad item, so that a
    caller can check a whole set before writing anything.  ``images``: the folder of a COCO
    file's images (default: the JSON file's folder).  ``unit``: one region per class or per
    instance (:data:`UNITS`; a VOC folder without instance PNGs falls back to class, with a
    note and a warning)."""
    check_unit(unit)
    root = Path(path).expanduser().absolute()
    format, doc = _detect(root)
    if images is not None and format != "coco":
        raise naming(
            LabelledError(
                str(images),
                "images",
                f"only a COCO file takes an images folder; {root} is {format}",
            ),
            "images",
        )
    notes: list[str] = []
    if format == "labelme":
        jobs: list[Job] = [
            (
                key_of(file, root),
                str(file),
                partial(labelme.decode, str(file), with_background, unit),
            )
            for file in labelme.json_files(root)
        ]
    elif format == "coco":
        folder = None if images is None else Path(images).expanduser().absolute()
        if folder is not None and not folder.is_dir():
            raise naming(LabelledError(str(folder), "images", "not a folder"), "images")
        found, notes, names = coco.images_of(root, root, folder, doc)
        jobs = [
            (
                image.key,
                str(root),
                partial(coco.decode, str(root), image, names, with_background, unit),
            )
            for image in found
        ]
    else:
        names_by_id = voc.class_names(root)
        objects = voc.object_folder(root) if unit == "instance" else None
        if unit == "instance" and objects is None:
            unit = "class"
            notes.append(
                f"{root}: VOC class PNGs carry no instances and there is no "
                f"{' or '.join(voc.OBJECT_FOLDERS)}/: one region per (photo, class) instead"
            )
        jobs = [
            (
                png.relative_to(root).as_posix(),
                str(png),
                partial(
                    voc.decode,
                    str(png),
                    str(root),
                    names_by_id,
                    with_background,
                    None if objects is None else str(objects),
                ),
            )
            for png in voc.mask_files(root)
        ]
    photos = _read(jobs, notes, progress=progress)
    if not photos:
        raise LabelledError(str(root), format, "no labelled photo in it")
    notes += _summary(photos)
    for note in notes:
        logger.warning("%s", note)
    logger.info(
        "read %d labelled photos (%s, one region per %s) from %s", len(photos), format, unit, root
    )
    photos.sort(key=lambda p: p.key)
    return LabelledSet(format, str(root), tuple(photos), tuple(notes), unit)


def _read(jobs: list[Job], notes: list[str], *, progress: bool) -> list[LabelledPhoto]:
    """Decodes each job once; duplicate keys or image files are errors."""
    photos: list[LabelledPhoto] = []
    keys: dict[str, str] = {}
    image_files: dict[str, str] = {}
    for key, source, reader in tqdm(
        jobs, desc="labelled photos", unit="photo", disable=not progress
    ):
        if key in keys:
            raise LabelledError(source, key, f"duplicate key: also {keys[key]}")
        keys[key] = source
        decoded = reader()
        if decoded.image_path is not None:
            if decoded.image_path in image_files:
                raise LabelledError(
                    source,
                    key,
                    f"duplicate file name: its image {decoded.image_path} is also that of "
                    f"{image_files[decoded.image_path]}",
                )
            image_files[decoded.image_path] = key
        if not decoded.regions:
            notes.append(f"{source}: {key}: no labelled region: skipped")
            continue
        photos.append(photo_from(decoded, key=key, source=source, reader=reader))
    return photos


def _summary(photos: list[LabelledPhoto]) -> list[str]:
    """Set notes counting the photos' notes by kind."""
    lines = []
    for kind, marker in (
        ("clipped to the image", "clipped to the image"),
        ("skipped", ": skipped"),
    ):
        hits = [p for p in photos if any(marker in note for note in p.notes)]
        count = sum(marker in note for p in hits for note in p.notes)
        if count:
            lines.append(f"{count} shapes {kind} in {len(hits)} photos (see their notes)")
    return lines
