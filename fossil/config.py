"""Typed, frozen configuration with the paper's defaults.

Each component has its own frozen dataclass; :class:`FossilConfig` composes them.
Field comments cite the section of ``docs/design.md`` (design §N) or the paper equation
they come from.  Symbols follow the paper: ``N`` is the retrieval count only, ``K`` the number
of prototypes, ``t`` the masks per threshold, ``tau`` the NCut threshold, ``eta``/``mu``/
``rho`` the refinement parameters, ``gamma`` the mean/max mix of eq. 5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Literal, get_args

from fossil.records import SOURCES

MaskMode = Literal["raw-sigmoid-minmax", "minmax", "zscore-sigmoid"]
MASK_MODES: tuple[str, ...] = ("raw-sigmoid-minmax", "minmax", "zscore-sigmoid")
# design §5.7 OpenCut: "paper" runs MaskCut on the full patch graph at every tau, refines each new
# mask (all its connected components) against the accepted ones; "shrinking-graph" (fossil's
# first OpenCut) removes covered patches from the graph between taus and keeps only the seed's
# connected component of each cut, so the merge (mu) and discard (rho) rules never fire.
OpenCutVariant = Literal["paper", "shrinking-graph"]
OPENCUT_VARIANTS: tuple[str, ...] = ("paper", "shrinking-graph")
# design §5.7 what tau means (fossil.segment.ncut.thresholds): "absolute", a cosine of the
# L2-normalised keys (the paper's, set on DINO ViT-B/8 keys); "centred", a cosine of the keys
# minus their per-image mean; "quantile", a fraction of the image's patch pairs: W̄ links the
# (1 − tau) most similar pairs, whatever the backbone's cosine range
TauSpace = Literal["absolute", "centred", "quantile"]
TAU_SPACES: tuple[str, ...] = ("absolute", "centred", "quantile")
# design §5.7 the NCut eigensolver (fossil.segment.ncut.second_eigenvector): "auto" is torch with
# CUDA, else lanczos; "eigsh" is the ARPACK solver used before issue 26 (same masks);
# "dense" is the reference (slow)
Solver = Literal["auto", "lanczos", "eigsh", "torch", "dense"]
SOLVERS: tuple[str, ...] = get_args(Solver)
# (foreground, background) schedules.  The paper's tau values are not published; these absolute
# ones (MaskCut's 0.15 on DINO ViT-B/8 keys, then the background phase) reproduce fossil's
# reading of the paper with tau_space="absolute" (OpenCutConfig.paper_absolute()).  The
# quantile ones are fossil's default, chosen on real photos with a real DINOv2-S/14.
PAPER_ABSOLUTE_TAUS: tuple[tuple[float, ...], tuple[float, ...]] = (
    (0.15, 0.2, 0.25),
    (0.6, 0.8, 0.0, -0.1),
)
QUANTILE_TAUS: tuple[tuple[float, ...], tuple[float, ...]] = ((0.5, 0.6, 0.7), (0.8, 0.9))
# design §5.11 the region proposer: which regions of a crop are pooled (eq. 4) and scored (eq. 5).
# The OpenCut names run FossilConfig.opencut with one change each (FossilConfig.
# region_opencut); "superpixels" are Felzenszwalb's, FreeDA's local regions
# (fossil.segment.superpixels); "patches" scores every patch on its own (Fig. 3 ablation).
RegionProposer = Literal[
    "opencut",  # the paper's OpenCut (FossilConfig.opencut as it is), the default
    "opencut-nocrf",  # OpenCut without its CRF
    "subdivide-1",  # OpenCut, each final region split once more (subdivide_depth 1)
    "subdivide-2",  # OpenCut, split up to 2 levels (subdivide_depth 2)
    "shrinking-graph",  # OpenCut, covered patches leave the graph between taus
    "superpixels",  # Felzenszwalb superpixels of the crop (FreeDA)
    "patches",  # no regions: every patch on its own
]
REGION_PROPOSERS: tuple[str, ...] = (
    "opencut",
    "opencut-nocrf",
    "subdivide-1",
    "subdivide-2",
    "shrinking-graph",
    "superpixels",
    "patches",
)


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} ({value}) must be in [0, 1]")


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} ({value}) must be >= 1")


@dataclass(frozen=True)
class ModelIds:
    """Hugging Face ids (or local directories) per model role (design §5.1, §5.4, §5.5, §5.7)."""

    generator: str = "stabilityai/stable-diffusion-2-1-base"  # design §5.1 SD 2.1 base
    dense: str = "facebook/dinov2-large"  # design §5.4 DINOv2 ViT-L/14, VRE + region features
    keys: str = "facebook/dino-vitb8"  # design §5.7 DINO ViT-B/8, OpenCut keys
    text: str = "openai/clip-vit-large-patch14"  # design §5.5 CLIP ViT-L/14 text tower
    nouns: str = "en_core_web_sm"  # spaCy pipeline for the noun parser


@dataclass(frozen=True)
class GenerationConfig:
    """Stable Diffusion generation and DAAM heat maps (design §5.1–§5.3)."""

    height: int = 512  # design §5.1 image side, pixels
    width: int = 512
    steps: int = 50  # design §5.1 denoising steps
    guidance_scale: float = 7.5  # design §5.1 classifier-free guidance (SD default)
    batch_size: int = 4  # captions per UNet call
    heatmap_resolutions: tuple[int, ...] = (64, 32, 16)  # design §5.2: latent sides hooked
    heatmap_size: int = 64  # design §5.2 every (layer, head) map is resized bicubic to this side
    mask_mode: MaskMode = "raw-sigmoid-minmax"  # design §5.3 binarisation mode
    heatmap_threshold: float = 0.45  # design §5.3 threshold after sigmoid + normalisation

    def __post_init__(self) -> None:
        _check_positive("steps", self.steps)
        _check_positive("batch_size", self.batch_size)
        if self.height % 8 or self.width % 8:
            raise ValueError(f"height/width ({self.height}x{self.width}) must be multiples of 8")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode {self.mask_mode!r} unknown; choose one of {MASK_MODES}")
        _check_unit("heatmap_threshold", self.heatmap_threshold)
        if not self.heatmap_resolutions:
            raise ValueError("heatmap_resolutions must not be empty")


@dataclass(frozen=True)
class TextConfig:
    """Textual Retrieval Embedding (design §5.5): TRE = norm(w·templates + (1−w)·caption)."""

    template_weight: float = 0.9  # design §5.5 template weight; caption: 1 − this

    def __post_init__(self) -> None:
        _check_unit("template_weight", self.template_weight)

    @property
    def caption_weight(self) -> float:
        return 1.0 - self.template_weight


@dataclass(frozen=True)
class RetrievalConfig:
    """Retrieval and prototypes (design §5.6)."""

    N: int = 150  # design §5.6 references retrieved per concept
    K: int = 10  # design §5.6 K-Means prototypes per concept
    niter: int = 20  # design §5.6 faiss K-Means iterations
    nredo: int = 1  # faiss K-Means restarts
    seed: int = 1234  # K-Means seed (fixed: same prototypes for the same references)
    retrieval_threshold: float | None = None  # drop neighbours with cosine below this
    prototype_mean: bool = False  # K=1 as the plain mean of the references
    exclude_corpora: tuple[str, ...] = ()  # references of these corpora are never retrieved
    # which references: "all", "generated" (Stable Diffusion + heat maps) or "labelled"
    # (labelled photos, corpora "labelled:<name>", design §5.10)
    references: str = "all"
    route: bool | None = None  # search only the nearest noun lemmas; None: at >= 200k refs
    route_cover: int = 10  # routed: nearest lemmas until they hold route_cover × N references

    def __post_init__(self) -> None:
        _check_positive("N", self.N)
        _check_positive("K", self.K)
        if self.K > self.N:
            raise ValueError(f"K ({self.K}) must be <= N ({self.N})")
        _check_positive("niter", self.niter)
        _check_positive("nredo", self.nredo)
        _check_positive("route_cover", self.route_cover)
        if self.references not in SOURCES:
            raise ValueError(f"references ({self.references!r}) must be one of {list(SOURCES)}")
        if self.retrieval_threshold is not None and not -1.0 <= self.retrieval_threshold <= 1.0:
            raise ValueError(f"retrieval_threshold ({self.retrieval_threshold}) must be in [-1, 1]")


@dataclass(frozen=True)
class CoverageConfig:
    """When a concept counts as covered by the collection (:mod:`fossil.query.coverage`).

    Covered: at least ``min_lemma_fraction`` of the N retrieved references carry the
    concept's own noun lemma, or the best and the N-th similarities reach ``min_best`` and
    ``min_nth``.  Similarities depend on the text encoder: ``None`` takes the thresholds
    measured for the collection's encoder (``fossil.query.coverage.MEASURED``); for an
    encoder with none measured, only the lemma rule applies.
    """

    min_best: float | None = None
    min_nth: float | None = None
    min_lemma_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("min_best", "min_nth"):
            value = getattr(self, name)
            if value is not None and not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} ({value}) must be in [-1, 1]")
        if not 0.0 < self.min_lemma_fraction <= 1.0:
            raise ValueError(f"min_lemma_fraction ({self.min_lemma_fraction}) must be in (0, 1]")


@dataclass(frozen=True)
class CRFConfig:
    """Dense CRF as in MaskCut (design §5.7)."""

    enabled: bool = True
    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 7.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 5.0
    bilateral_compat: float = 10.0
    min_iou: float = 0.5  # drop the mask when IoU(before, after) is below this
    multi_label: bool = False  # one CRF over all final masks instead of one per raw mask
    # processes for a crop's per-mask CRFs (same masks either way): 1 = in this process,
    # 0 = one per CPU core (the CLI's default); fossil.segment.crf.crf_masks
    workers: int = 1
    # CRF only the raw masks that survive: the refinement's merge / discard checks run first on
    # the raw masks (upsampled, no CRF), and a raw mask none of whose components would be
    # accepted as a new region is dropped without its CRF (fossil.segment.opencut; measured in
    # docs/opencut-speed.md: 3-11 of 13-15 CRFs, masks at mean IoU 0.986-1.0 of the full path)
    survivors_only: bool = False

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"CRF workers ({self.workers}) must be >= 0 (0: one per CPU core)")


@dataclass(frozen=True)
class OpenCutConfig:
    """OpenCut: iterated MaskCut over a threshold schedule, CRF, refinement (design §5.7)."""

    # design §5.7 schedule, in tau_space units; measured on real photos (benchmarks/real_photos.py)
    tau_foreground: tuple[float, ...] = QUANTILE_TAUS[0]  # foreground phase
    tau_background: tuple[float, ...] = QUANTILE_TAUS[1]  # background phase
    t: int = 3  # design §5.7 masks per tau
    min_area: float = 0.01  # design §5.7 reject a mask covering at most this fraction of the grid
    corner_flip: bool = False  # MaskCut's "≥3 of 4 corners → flip", foreground phase only
    accept_coherent_remainder: bool = True  # design §5.7 keep a homogeneous remainder as one region
    eta: int = 16  # design §5.7 drop connected components smaller than eta pixels (480² scale)
    mu: float = 0.8  # design §5.7 merge into an accepted mask when IoU > mu (checked first)
    rho: float = 0.7  # design §5.7 discard when more than rho of the mask is already covered
    crf: CRFConfig = field(default_factory=CRFConfig)
    # design §5.7 in the cosine tau spaces (absolute, centred: tau is eq. 1's cosine threshold) a
    # coherent remainder counts only at a threshold >= this (all pairs above it: truly alike).
    # In quantile space tau ranks the image's pairs, and every coherent remainder counts
    coherent_min_cosine: float = 0.5
    solver: Solver = "auto"  # design §5.7 NCut eigensolver, see SOLVERS
    variant: OpenCutVariant = "paper"  # design §5.7 see OPENCUT_VARIANTS
    tau_space: TauSpace = "quantile"  # design §5.7 see TAU_SPACES
    subdivide_depth: int = 0  # fossil's departure: split final masks (fossil.segment.subdivide)
    # design §5.7 a raw mask no CRF refines (no image, CRF off) is dropped as speckle when its 3×3
    # majority on the patch grid keeps less than this IoU of it (fossil.segment.refine.
    # majority_iou): measured 0.94-0.99 for planted regions, 0.07-0.55 for cuts of noise links
    speckle_iou: float = 0.75

    def __post_init__(self) -> None:
        if self.variant not in OPENCUT_VARIANTS:
            raise ValueError(
                f"variant {self.variant!r} unknown; choose one of {', '.join(OPENCUT_VARIANTS)}"
            )
        if self.tau_space not in TAU_SPACES:
            raise ValueError(
                f"tau_space {self.tau_space!r} unknown; choose one of {', '.join(TAU_SPACES)}"
            )
        if self.tau_space == "quantile" and not all(0.0 <= tau <= 1.0 for tau in self.taus):
            raise ValueError(
                f"quantile taus must be fractions in [0, 1], got {self.taus}; the paper's "
                "absolute schedule needs tau_space='absolute' (OpenCutConfig.paper_absolute())"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"solver {self.solver!r} unknown; choose one of {', '.join(SOLVERS)}")
        if not (self.tau_foreground or self.tau_background):
            raise ValueError("the tau schedule must not be empty")
        _check_positive("t", self.t)
        _check_unit("mu", self.mu)
        _check_unit("rho", self.rho)
        _check_unit("min_area", self.min_area)
        _check_unit("speckle_iou", self.speckle_iou)
        if not -1.0 <= self.coherent_min_cosine <= 1.0:
            raise ValueError(f"coherent_min_cosine ({self.coherent_min_cosine}) must be in [-1, 1]")
        if self.eta < 0:
            raise ValueError(f"eta ({self.eta}) must be >= 0")
        if self.subdivide_depth < 0:
            raise ValueError(f"subdivide_depth ({self.subdivide_depth}) must be >= 0")

    @property
    def taus(self) -> tuple[float, ...]:
        return self.tau_foreground + self.tau_background

    @classmethod
    def paper_absolute(cls, **overrides: object) -> OpenCutConfig:
        """The paper's absolute tau schedule on DINO ViT-B/8 keys (:data:`PAPER_ABSOLUTE_TAUS`)."""
        fg, bg = PAPER_ABSOLUTE_TAUS
        values: dict[str, object] = {
            "tau_space": "absolute",
            "tau_foreground": fg,
            "tau_background": bg,
        }
        return cls(**(values | overrides))  # type: ignore[arg-type]


@dataclass(frozen=True)
class SuperpixelConfig:
    """Felzenszwalb's graph-based superpixels (FreeDA's local regions), in pixels of the crop.

    FreeDA's values (``mask_proposer/superpixel_configs.py`` of aimagelab/freeda), set on its
    448² crops, the size of fossil's crops (design §9)."""

    scale: float = 600.0  # larger: fewer, larger segments
    sigma: float = 0.8  # Gaussian smoothing of the image before segmenting, pixels
    min_size: int = 400  # smallest segment, pixels (merged into a neighbour below this)

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"superpixel scale ({self.scale}) must be > 0")
        if self.sigma < 0:
            raise ValueError(f"superpixel sigma ({self.sigma}) must be >= 0")
        if self.min_size < 0:
            raise ValueError(f"superpixel min_size ({self.min_size}) must be >= 0")


@dataclass(frozen=True)
class ScoringConfig:
    """Region scoring (design §5.8, eq. 5)."""

    gamma: float = 0.5  # eq. 5: score = (1−γ)·mean_k + γ·max_k
    sigmoid_after_ensemble: bool = False  # FreeDA's order: ensemble cosines, then sigmoid

    def __post_init__(self) -> None:
        _check_unit("gamma", self.gamma)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol (design §9, TCL / mmseg 0.27)."""

    short_side: int = 448  # resize: scale = min(long_side/long, short_side/short)
    long_side: int = 2048
    crop: int = 448  # sliding-window crop side
    stride: int = 224  # sliding-window stride
    # design §9 input sides per crop (fossil.models.loading builds the encoders at them); None
    # follows the backbone's patch size: dense 518 at /14 (DINOv2, 37×37 patches), else the
    # largest multiple of the patch below 518; keys 480 at /8 (DINO ViT-B/8, 60×60) and /16,
    # 518 at /14.  A side must be a multiple of the backbone's patch size.
    dense_size: int | None = None
    key_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("short_side", "long_side", "crop", "stride", "dense_size", "key_size"):
            value = getattr(self, name)
            if value is not None:
                _check_positive(name, value)


@dataclass(frozen=True)
class FossilConfig:
    """Everything a query, a segmentation or an evaluation reads, composed.

    How the references were built is not configured here: the models and the generation
    settings are the model profile's (``fossil.models.loading.ModelProfile``: ``ModelIds`` per
    role, ``GenerationConfig`` from its ``[generation]`` table, fingerprinted into point ids),
    and the TRE weight is :class:`TextConfig`'s, read by ingest (its ``IngestOptions.text``).
    """

    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    coverage: CoverageConfig = field(default_factory=CoverageConfig)
    opencut: OpenCutConfig = field(default_factory=OpenCutConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    regions: RegionProposer = "opencut"  # design §5.11 the region proposer, see REGION_PROPOSERS
    superpixels: SuperpixelConfig = field(default_factory=SuperpixelConfig)

    def __post_init__(self) -> None:
        if self.regions not in REGION_PROPOSERS:
            raise ValueError(
                f"regions {self.regions!r} unknown; choose one of {', '.join(REGION_PROPOSERS)}"
            )

    @property
    def region_opencut(self) -> OpenCutConfig | None:
        """The OpenCut settings the region proposer runs: :attr:`opencut` with the change
        its name makes; ``None`` when the proposer is not OpenCut."""
        opencut = self.opencut
        if self.regions == "opencut":
            return opencut
        if self.regions == "opencut-nocrf":
            return replace(opencut, crf=replace(opencut.crf, enabled=False))
        if self.regions in ("subdivide-1", "subdivide-2"):
            return replace(opencut, subdivide_depth=int(self.regions[-1]))
        if self.regions == "shrinking-graph":
            return replace(opencut, variant="shrinking-graph")
        return None


@dataclass(frozen=True)
class Preset:
    """One row of the paper's Table 3 (design §5.9)."""

    N: int
    K: int
    gamma: float


# Table 3 of the paper (design §5.9): best (N, K, γ) per benchmark.
PRESETS: MappingProxyType[str, Preset] = MappingProxyType(
    {
        "context": Preset(N=70, K=10, gamma=0.7),
        "cocostuff": Preset(N=95, K=25, gamma=0.5),
        "ade": Preset(N=150, K=10, gamma=0.5),
        "cityscapes": Preset(N=95, K=30, gamma=0.55),
    }
)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}") from None


def apply_preset(config: FossilConfig, name: str) -> FossilConfig:
    """Return ``config`` with N, K and γ of the named Table 3 preset."""
    preset = get_preset(name)
    return replace(
        config,
        retrieval=replace(config.retrieval, N=preset.N, K=preset.K),
        scoring=replace(config.scoring, gamma=preset.gamma),
    )


def with_overrides(
    config: FossilConfig,
    preset: str | None = None,
    *,
    N: int | None = None,
    K: int | None = None,
    gamma: float | None = None,
    regions: str | None = None,
) -> FossilConfig:
    """``config``, then the Table 3 ``preset`` when given, then N, K, γ and the region
    proposer where given (``None`` keeps the value).  Invalid values raise the configs'
    ``ValueError``."""
    config = config if preset is None else apply_preset(config, preset)
    retrieval = replace(
        config.retrieval,
        N=config.retrieval.N if N is None else N,
        K=config.retrieval.K if K is None else K,
    )
    scoring = replace(config.scoring, gamma=config.scoring.gamma if gamma is None else gamma)
    return replace(
        config,
        retrieval=retrieval,
        scoring=scoring,
        regions=config.regions if regions is None else regions,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class CollectionSettings:
    """What a collection was built for, recorded in its catalog by whoever built it
    (``fossil demo`` records its world's): the N, K, γ and image sides that commands reading
    it use unless told otherwise (flags, presets and requests still override them), and two
    things for people: what the collection is and concepts it covers, to try first.
    ``None``: not recorded, the paper's default (or a benchmark's preset) holds."""

    N: int | None = None  # design §5.6 references per concept
    K: int | None = None  # design §5.6 prototypes per concept
    gamma: float | None = None  # eq. 5 weight of the max over prototypes
    short_side: int | None = None  # design §9 resize target of the short side, pixels
    crop: int | None = None  # design §9 sliding-window crop side, pixels
    stride: int | None = None  # design §9 sliding-window stride, pixels
    about: str = ""  # one sentence: what the collection is
    examples: tuple[str, ...] = ()  # concepts the collection covers

    def __post_init__(self) -> None:
        self.apply(FossilConfig())  # the configs' own checks: K ≤ N, 0 ≤ γ ≤ 1, sides ≥ 1

    @property
    def sets_retrieval(self) -> bool:
        """Whether N, K or γ is recorded (then it replaces a benchmark's preset)."""
        return any(v is not None for v in (self.N, self.K, self.gamma))

    def apply(self, config: FossilConfig) -> FossilConfig:
        """``config`` with the recorded values."""
        sides = {"short_side": self.short_side, "crop": self.crop, "stride": self.stride}
        evaluation = replace(config.eval, **{name: v for name, v in sides.items() if v is not None})
        return replace(
            with_overrides(config, N=self.N, K=self.K, gamma=self.gamma), eval=evaluation
        )

    def describe(self) -> str:
        """The recorded values, e.g. ``"N 40, K 1, γ 0.5, short side 256, crop 256, stride
        128"`` (empty when none is)."""
        named = [("N", self.N), ("K", self.K), ("γ", self.gamma), ("short side", self.short_side),
                 ("crop", self.crop), ("stride", self.stride)]  # fmt: skip
        return ", ".join(f"{name} {value:g}" for name, value in named if value is not None)

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "examples": list(self.examples)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CollectionSettings:
        """Settings from :meth:`as_dict`'s form; keys this version does not know are ignored
        (a newer fossil may record more)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "examples" in values:
            values["examples"] = tuple(values["examples"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]
