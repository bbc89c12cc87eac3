"""VOC-style folders: class-id PNGs, their photos in ``JPEGImages/``, ``class_names.txt``."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from .common import IGNORE, assemble
from .raster import read_image, read_label_png
from .records import Decoded, LabelledError, LabelledRegion

IMAGES = "JPEGImages"
MASK_FOLDERS = ("SegmentationClass", "SegmentationClassPNG")
OBJECT_FOLDERS = ("SegmentationObject", "SegmentationObjectPNG")  # instance-id PNGs
NAMES = "class_names.txt"
IGNORE_ID = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_voc(root: Path) -> bool:
    return (root / IMAGES).is_dir() and any((root / name).is_dir() for name in MASK_FOLDERS)


def class_names(root: Path) -> tuple[str, ...]:
    """The names by class id: one a line, id 0 the background; a first ``__ignore__`` line
    (labelme's labels file) is not a class, and the ids count from the line after it."""
    path = root / NAMES
    if not path.is_file():
        raise LabelledError(
            str(path), "file", "missing: write one class name a line, the background first"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelledError(str(path), "file", f"cannot read ({error})") from error
    first = 1 if lines and lines[0].strip() == IGNORE else 0
    while lines and not lines[-1].strip():
        lines.pop()
    names: list[str] = []
    for number, line in enumerate(lines[first:], start=first + 1):
        name = line.strip()
        if not name:
            raise LabelledError(str(path), f"line {number}", "an empty class name")
        if name in names:
            raise LabelledError(
                str(path),
                f"line {number}",
                f"{name!r} is also on line {names.index(name) + first + 1}",
            )
        names.append(name)
    if not names:
        raise LabelledError(str(path), "file", "no class names")
    return tuple(names)


def mask_files(root: Path) -> list[Path]:
    """The class-id PNGs: those of ``SegmentationClass/``, else of ``SegmentationClassPNG/``
    (labelme's export keeps ``.npy`` arrays in the first); both holding PNGs is ambiguous."""
    return _pngs(root, MASK_FOLDERS)


def object_folder(root: Path) -> Path | None:
    """The folder of instance-id PNGs (``SegmentationObject/``, else
    ``SegmentationObjectPNG/``), None when the set has none: VOC class PNGs alone carry no
    instances."""
    found = _pngs(root, OBJECT_FOLDERS)
    return found[0].parent if found else None


def _pngs(root: Path, folders: tuple[str, ...]) -> list[Path]:
    found = {
        name: sorted(p for p in (root / name).glob("*.png") if p.is_file())
        for name in folders
        if (root / name).is_dir()
    }
    with_pngs = [name for name, files in found.items() if files]
    if len(with_pngs) > 1:
        raise LabelledError(
            str(root), "folder", f"both {' and '.join(with_pngs)} hold PNGs: keep one of them"
        )
    return found[with_pngs[0]] if with_pngs else []


def image_file(png: Path, root: Path) -> Path:
    """The photo of a class-id PNG: ``JPEGImages/<stem>`` with an image suffix, only one."""
    pattern = str(root / IMAGES / (glob.escape(png.stem) + ".*"))
    found = sorted(Path(p) for p in glob.glob(pattern) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise LabelledError(str(png), "image", f"no {IMAGES}/{png.stem}.jpg (or .png, .jpeg)")
    if len(found) > 1:
        raise LabelledError(
            str(png),
            "image",
            f"duplicate file name: {', '.join(p.name for p in found)} in {IMAGES}/: keep one",
        )
    return found[0].resolve()


def decode(
    png_text: str,
    root_text: str,
    names: tuple[str, ...],
    with_background: bool,
    objects_text: str | None = None,
) -> Decoded:
    """Reads one class-id PNG and its photo (ids index ``names``; 255 is ignore); with
    ``objects_text`` (the folder of instance-id PNGs) one region per object instead of per
    class (``"object <value>"``)."""
    png, root = Path(png_text), Path(root_text)
    file = str(png)
    image_path = image_file(png, root)
    rgb = read_image(image_path, file, f"image {IMAGES}/{image_path.name}", exif=False)
    label = read_label_png(png, file, "class-id PNG")
    if label.shape != rgb.shape[:2]:
        raise LabelledError(
            file,
            "size",
            f"the mask is {label.shape[0]}×{label.shape[1]} but {IMAGES}/{image_path.name} is "
            f"{rgb.shape[0]}×{rgb.shape[1]}",
        )
    ids = [int(v) for v in np.unique(label) if v != IGNORE_ID]
    for value in ids:
        if not 0 <= value < len(names):
            raise LabelledError(
                file,
                f"class id {value}",
                f"has no name in {NAMES} ({len(names)} names: ids 0–{len(names) - 1}; "
                f"{IGNORE_ID} means ignore)",
            )
    masks = {names[value]: label == value for value in ids}
    ignore = label == IGNORE_ID
    regions = assemble(
        [names[value] for value in ids if value != 0],
        masks,
        ignore,
        file=file,
        with_background=with_background,
        background=names[0],
    )
    if objects_text is not None:
        objects = Path(objects_text) / png.name
        regions = _objects(regions, objects, label, names)
    return Decoded(rgb, str(image_path), regions, ignore, None, ())


def _objects(
    classes: tuple[LabelledRegion, ...], png: Path, label: np.ndarray, names: tuple[str, ...]
) -> tuple[LabelledRegion, ...]:
    """One region per object of the instance-id PNG ``png`` (0 none, 255 ignore), named by
    the class its pixels have in ``label``; the background region, if any, stays first."""
    file = str(png)
    if not png.is_file():
        raise LabelledError(
            file, "instance-id PNG", f"missing: {png.parent.name}/ has no {png.name}"
        )
    objects = read_label_png(png, file, "instance-id PNG")
    if objects.shape != label.shape:
        raise LabelledError(
            file,
            "size",
            f"the objects are {objects.shape[0]}×{objects.shape[1]} but the class PNG is "
            f"{label.shape[0]}×{label.shape[1]}",
        )
    regions = [region for region in classes if region.name == names[0]]
    for value in (int(v) for v in np.unique(objects) if v not in (0, IGNORE_ID)):
        mask = (objects == value) & (label != IGNORE_ID)
        ids = [int(v) for v in np.unique(label[mask]) if v != 0]
        if len(ids) != 1:
            got = "no class" if not ids else "classes " + ", ".join(names[i] for i in ids)
            raise LabelledError(file, f"object {value}", f"its pixels have {got} in the class PNG")
        regions.append(LabelledRegion(names[ids[0]], mask & (label == ids[0]), f"object {value}"))
    return tuple(regions)
