"""Segment images for concepts against a reference collection (design §5.7–§5.8, §9).

Per crop: dense features (DINOv2, design §5.4/§5.8) and OpenCut masks on the key encoder's patch
grid (DINO keys, design §5.7) — both concept-independent and cacheable per crop — then region
pooling (eq. 4) and scoring against the concepts' prototypes (eq. 5).  Whole images follow
the evaluation protocol of design §9 (resize, sliding windows, averaging, upsampling).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fossil.concepts import check_concepts
from fossil.config import FossilConfig
from fossil.models.protocols import DenseEncoder
from fossil.numerics import l2_normalise
from fossil.pipeline.crop_cache import CropCache, config_fingerprint
from fossil.query.engine import QueryEngine
from fossil.query.retrieval import ConceptResult
from fossil.segment.opencut import opencut
from fossil.segment.scoring import ScoreMap, score_map
from fossil.segment.superpixels import superpixels
from fossil.segment.window import (
    resize_image,
    resized_size,
    slide_inference,
    sliding_windows,
    upsample_argmax,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropAnalysis:
    """The concept-independent part of a crop: features and OpenCut masks."""

    features: np.ndarray  # (h, w, dim) dense features of the crop
    masks: np.ndarray  # (L, H, W) bool region masks at the crop size (L = 0: per patch)


def _check_input_sizes(dense: DenseEncoder, keys: DenseEncoder, config: FossilConfig) -> None:
    """Refuse encoders built at other input sides than ``config.eval`` sets (None: any)."""
    for role, encoder, side in (
        ("dense", dense, config.eval.dense_size),
        ("keys", keys, config.eval.key_size),
    ):
        if side is not None and encoder.input_size != side:
            raise ValueError(
                f"the {role} encoder takes {encoder.input_size}² inputs but the config's "
                f"{role.replace('keys', 'key')}_size is {side}: build it at that side "
                "(fossil.models.loading.load_models(dense_size=..., key_size=...))"
            )


class ImageAnalyser:
    """Dense features + region masks of a crop, optionally cached on disk (per crop content
    and everything the arrays depend on: encoders, input sizes, region proposer settings).

    ``config.regions`` picks the proposer: the OpenCut names run OpenCut on the key
    encoder's patch grid with ``config.region_opencut``; ``"superpixels"`` cuts the crop's
    colours (:func:`fossil.segment.superpixels.superpixels`); ``"patches"`` gives no masks
    (every patch is scored on its own)."""

    def __init__(
        self,
        dense: DenseEncoder,
        keys: DenseEncoder,
        config: FossilConfig,
        cache: CropCache | None = None,
    ) -> None:
        _check_input_sizes(dense, keys, config)
        self.dense = dense
        self.keys = keys
        self.config = config
        self.cache = cache
        self.fingerprint = config_fingerprint(
            {
                "dense": [dense.name, dense.input_size, dense.dim],
                "keys": [keys.name, keys.input_size, keys.dim],
                **_proposer_settings(config),
            }
        )

    def analyse(self, crop: np.ndarray) -> CropAnalysis:
        if self.cache is None:
            return self._compute(crop)
        sha1, box = CropCache.crop_key(crop)
        arrays = self.cache.get_or_compute(
            sha1, box, self.fingerprint, lambda: asdict(self._compute(crop))
        )
        return CropAnalysis(features=arrays["features"], masks=arrays["masks"].astype(bool))

    def _compute(self, crop: np.ndarray) -> CropAnalysis:
        height, width = crop.shape[:2]
        features = np.asarray(self.dense.features([crop])[0], np.float32)
        opencut_config = self.config.region_opencut
        if self.config.regions == "superpixels":
            masks = superpixels(np.ascontiguousarray(crop), self.config.superpixels)
            return CropAnalysis(features, masks)
        if opencut_config is None:  # "patches"
            return CropAnalysis(features, np.zeros((0, height, width), bool))
        side = self.keys.input_size
        keys = np.asarray(self.keys.features([crop])[0], np.float32)
        resized = resize_image(crop, (side, side)) if crop.shape[:2] != (side, side) else crop
        masks = opencut(keys, np.ascontiguousarray(resized), opencut_config)
        return CropAnalysis(features, _resize_nearest(masks, (height, width)))


def _proposer_settings(config: FossilConfig) -> dict[str, object]:
    """What a crop's masks depend on besides the crop and the encoders, for the cache key.
    The default proposer's key is the one fossil wrote before proposers had names."""
    opencut = config.region_opencut
    if opencut is not None:
        return {"opencut": asdict(opencut)}
    if config.regions == "superpixels":
        return {"opencut": None, "superpixels": asdict(config.superpixels)}
    return {"opencut": None}


def _resize_nearest(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(L, h, w) bool → (L, H, W) bool; nearest keeps the masks mutually exclusive."""
    if masks.shape[1:] == size or len(masks) == 0:
        return masks if len(masks) else np.zeros((0, *size), bool)
    m = torch.from_numpy(masks.astype(np.uint8))[None].float()
    return F.interpolate(m, size=size, mode="nearest")[0].numpy() > 0.5


@dataclass(frozen=True)
class Region:
    """One OpenCut region of one crop and the concept that won it."""

    box: tuple[int, int, int, int]  # (y1, y2, x1, x2) of the crop in the resized image
    index: int  # mask index within the crop
    area: int  # pixels (resized image scale)
    concept: int  # winning concept index
    score: float  # its eq. 5 score
    embedding: np.ndarray = field(repr=False)  # (dim,) region embedding (eq. 4)


class CropScorer:
    """The :class:`fossil.segment.window.CropPredictor` of fossil: (C, h, w) eq. 5 scores of
    a crop against fixed per-concept prototypes.  With ``record=True`` it keeps the regions
    it scored (for explanations)."""

    def __init__(
        self,
        analyser: ImageAnalyser,
        prototypes: Sequence[np.ndarray],
        config: FossilConfig,
        record: bool = False,
    ) -> None:
        if not prototypes:
            raise ValueError("prototypes is empty: give at least one concept")
        self.analyser = analyser
        self.prototypes = list(prototypes)
        self.config = config
        self.record = record
        self.regions: list[Region] = []
        self.masks: list[np.ndarray] = []  # with record: per crop with regions, (L, h, w)
        self._box = (0, 0, 0, 0)

    def set_window(self, box: tuple[int, int, int, int]) -> None:
        """Tell the scorer where the next crop lies, (y1, y2, x1, x2), for its records."""
        self._box = box

    @property
    def num_classes(self) -> int:
        return len(self.prototypes)

    def scores(self, crop: np.ndarray) -> np.ndarray:
        analysis = self.analyser.analyse(crop)
        gamma, after = self.config.scoring.gamma, self.config.scoring.sigmoid_after_ensemble
        scored = score_map(analysis.features, analysis.masks, self.prototypes, gamma, after)
        if self.record and len(analysis.masks):
            self._record(analysis.masks, scored)
            self.masks.append(analysis.masks)
        return scored.scores

    def _record(self, masks: np.ndarray, scored: ScoreMap) -> None:
        rows = zip(masks, scored.region_scores, scored.embeddings, strict=True)
        for i, (mask, row, embedding) in enumerate(rows):
            winner = int(row.argmax())
            self.regions.append(
                Region(self._box, i, int(mask.sum()), winner, float(row[winner]), embedding)
            )


@dataclass(frozen=True)
class Explanation:
    """Why a region got its concept: the references whose VREs are closest to it."""

    region: Region
    references: tuple[tuple[str, float, str | None, str, str | None], ...]
    # (point id, cosine to the region, caption, noun, thumbnail)


@dataclass(frozen=True)
class SegmentationResult:
    concepts: list[str]
    labels: np.ndarray  # (H, W) int64 concept index per pixel, original image size
    scores: np.ndarray  # (C, h, w) float32 eq. 5 scores at the working (resized) size
    concept_results: list[ConceptResult]
    explanations: list[Explanation]
    working: tuple[int, int] = (0, 0)  # (h, w) of the resized image the regions' boxes refer to
    # per crop with regions, its (L, h, w) masks, in the order of the explanations' regions
    masks: list[np.ndarray] = field(default_factory=list, repr=False)

    def region_map(self) -> np.ndarray:
        """(H, W) int32 index of the explanation whose region covers each pixel, -1 where
        none does (:func:`region_map`; empty when the regions were not kept)."""
        regions = [e.region for e in self.explanations]
        return region_map(regions, self.masks, self.working, self.labels.shape[:2])


def segment_image(
    image: np.ndarray,
    concepts: Sequence[str],
    config: FossilConfig,
    *,
    engine: QueryEngine,
    analyser: ImageAnalyser,
    explain: int = 3,
    progress: bool = False,
) -> SegmentationResult:
    """Label every pixel of ``image`` (H, W, 3) uint8 with one of ``concepts``.

    ``engine`` retrieves prototypes from its collection (its cache makes repeated concept
    lists free); ``analyser`` computes features and OpenCut masks per crop.  ``explain``:
    references kept per region for the explanation (0 for none).  ``progress``: a bar over
    the sliding-window crops when there are several (a long image has many)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    concepts = check_concepts(concepts)
    results = engine.query(concepts)
    scorer = CropScorer(analyser, [r.prototypes for r in results], config, record=explain > 0)
    height, width = image.shape[:2]
    ev = config.eval
    resized = resize_image(image, resized_size(width, height, ev.long_side, ev.short_side))
    windows = len(sliding_windows(resized.shape[0], resized.shape[1], ev.crop, ev.stride))
    with tqdm(total=windows, desc="crops", unit="crop", disable=not progress or windows < 2) as bar:

        def on_window(window: tuple[int, int, int, int]) -> None:
            scorer.set_window(window)
            bar.update(1)

        scores = slide_inference(resized, scorer, ev.crop, ev.stride, on_window=on_window)
    labels = upsample_argmax(torch.as_tensor(scores), (height, width)).numpy()
    explanations = [_explain(region, results, explain) for region in scorer.regions]
    working = (int(resized.shape[0]), int(resized.shape[1]))
    return SegmentationResult(
        list(concepts), labels, scores, results, explanations, working, scorer.masks
    )


def region_map(
    regions: Sequence[Region],
    masks: Sequence[np.ndarray],
    working: tuple[int, int],
    size: tuple[int, int],
) -> np.ndarray:
    """(H, W) int32 region index per pixel of the original ``size`` (H, W), -1 where no
    region lies.  ``regions`` in record order, ``masks``: per crop with regions, its (L, h, w)
    masks; ``working``: (h, w) of the resized image the crops were cut from.  Later windows
    paint over earlier ones where they overlap."""
    boxes = list(dict.fromkeys(region.box for region in regions))
    if len(boxes) != len(masks):
        logger.warning(
            "%d crops with regions but %d mask sets: no region map", len(boxes), len(masks)
        )
        return np.full(size, -1, np.int32)
    crop_masks = dict(zip(boxes, masks, strict=True))
    painted = np.full(working, -1, np.int32)
    for number, region in enumerate(regions):
        y1, y2, x1, x2 = region.box
        mask = crop_masks[region.box][region.index]
        painted[y1:y2, x1:x2][mask] = number
    rows = np.minimum((np.arange(size[0]) + 0.5) * working[0] / size[0], working[0] - 1)
    cols = np.minimum((np.arange(size[1]) + 0.5) * working[1] / size[1], working[1] - 1)
    return painted[rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]]


def _explain(region: Region, results: list[ConceptResult], top: int) -> Explanation:
    result = results[region.concept]
    if len(result.visual) == 0:
        return Explanation(region, ())
    cos = l2_normalise(result.visual) @ l2_normalise(region.embedding)
    order = np.argsort(-cos)[:top]
    refs = tuple(
        (
            result.references[i].id,
            float(cos[i]),
            result.references[i].caption,
            result.references[i].noun,
            result.references[i].thumbnail,
        )
        for i in order
    )
    return Explanation(region, refs)


def build_predictor(
    prototypes: Sequence[np.ndarray],
    dense: DenseEncoder,
    keys: DenseEncoder,
    config: FossilConfig,
    cache: CropCache | None = None,
) -> CropScorer:
    """The crop predictor the evaluation runner drives (design §9): per crop features + OpenCut
    masks (cached when ``cache`` is given) scored against ``prototypes``."""
    return CropScorer(ImageAnalyser(dense, keys, config, cache), prototypes, config)


__all__ = [
    "CropAnalysis",
    "CropScorer",
    "Explanation",
    "ImageAnalyser",
    "Region",
    "SegmentationResult",
    "build_predictor",
    "region_map",
    "segment_image",
]
