"""JSON bodies of the ``fossil serve`` API, built from the library's results.

Local paths never leave the server: a reference's thumbnail is given as its API URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fossil.pipeline.overlay import overlay, palette
from fossil.records import SOURCE_GENERATED
from fossil.serve.images import label_png, png_data_url, region_png

if TYPE_CHECKING:
    from fossil.config import FossilConfig, RetrievalConfig
    from fossil.serve.service import Segmentation


def thumbnail_url(point_id: str) -> str:
    return f"/references/{point_id}/thumbnail"


def _hex(color: np.ndarray) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in color)


def region_points(regions: np.ndarray, count: int) -> list[list[int] | None]:
    """Per region index < ``count``: a pixel [x, y] inside it (the middle one of its pixels in
    raster order), None for a region painted over everywhere."""
    flat = regions.ravel()
    inside = np.flatnonzero(flat >= 0)
    order = inside[np.argsort(flat[inside], kind="stable")]
    ids = flat[order]
    starts = np.searchsorted(ids, np.arange(count), side="left")
    ends = np.searchsorted(ids, np.arange(count), side="right")
    width = regions.shape[1]
    points: list[list[int] | None] = []
    for start, end in zip(starts, ends, strict=True):
        if end == start:
            points.append(None)
            continue
        pixel = int(order[(start + end - 1) // 2])
        points.append([pixel % width, pixel // width])
    return points


def segment_response(
    image: np.ndarray, segmentation: Segmentation, config: FossilConfig
) -> dict[str, Any]:
    """The body of ``POST /segment``."""
    result = segmentation.result
    names = result.concepts
    height, width = result.labels.shape
    total = max(height * width, 1)
    colors = palette(len(names))
    counts = np.bincount(result.labels.ravel(), minlength=len(names))
    regions = [e.region for e in result.explanations]
    visible = np.bincount(segmentation.regions.ravel() + 1, minlength=len(regions) + 1)[1:]
    points = region_points(segmentation.regions, len(regions))
    sy, sx = height / segmentation.working[0], width / segmentation.working[1]
    return {
        "size": [width, height],
        "seconds": round(segmentation.seconds, 3),
        "settings": {
            "N": config.retrieval.N,
            "K": config.retrieval.K,
            "gamma": config.scoring.gamma,
            "opencut": config.region_opencut is not None,
            "regions": config.regions,
        },
        "concepts": [
            {
                "concept": name,
                "index": i,
                "pixels": float(counts[i] / total),
                "color": _hex(colors[i]),
                "coverage": coverage.as_dict(),
            }
            for i, (name, coverage) in enumerate(zip(names, segmentation.coverage, strict=True))
        ],
        "labels": png_data_url(label_png(result.labels, len(names))),
        "overlay": png_data_url(overlay(image, result.labels, names)),
        "regions_map": png_data_url(region_png(segmentation.regions)),
        "regions": [
            {
                "id": number,
                "concept": names[e.region.concept],
                "concept_index": e.region.concept,
                "score": round(e.region.score, 6),
                "pixels": float(visible[number] / total),
                "point": points[number],
                "box": [  # the crop it was found in, [x1, y1, x2, y2] in image pixels
                    round(e.region.box[2] * sx),
                    round(e.region.box[0] * sy),
                    round(e.region.box[3] * sx),
                    round(e.region.box[1] * sy),
                ],
                "references": [
                    {
                        "id": point_id,
                        "cosine": round(cosine, 6),
                        "caption": caption,
                        "noun": noun,
                        "thumbnail": thumbnail_url(point_id) if thumbnail else None,
                    }
                    for point_id, cosine, caption, noun, thumbnail in e.references
                ],
            }
            for number, e in enumerate(result.explanations)
        ],
    }


def query_response(
    results: Sequence[dict[str, Any]], retrieval: RetrievalConfig, top: int
) -> dict[str, Any]:
    """The body of ``GET /query``: per concept its first ``top`` references."""
    concepts = []
    for result in results:
        references = result["references"]
        shown = [
            {
                "id": r["id"],
                "score": round(float(r["score"]), 6),
                "caption": r["caption"],
                "noun": r["noun"],
                "corpus": r["corpus"],
                "source": r.get("source", SOURCE_GENERATED),  # or "labelled" (a photo)
                "thumbnail": thumbnail_url(r["id"]) if r["thumbnail"] else None,
            }
            for r in references[:top]
        ]
        concepts.append(
            {
                "concept": result["concept"],
                "retrieved": len(references),
                "prototypes": result["prototypes"],
                "coverage": result["coverage"],
                "references": shown,
            }
        )
    return {"N": retrieval.N, "K": retrieval.K, "concepts": concepts}
