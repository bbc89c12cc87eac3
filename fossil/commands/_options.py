"""Flags shared by several commands (query, segment, eval, serve, ingest, corpus, info) and
the typed values they build from them: one definition, so the commands cannot drift apart.
Nothing here is passed an ``argparse.Namespace`` below :mod:`fossil.commands`."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fossil.config import (
    OPENCUT_VARIANTS,
    PRESETS,
    REGION_PROPOSERS,
    CollectionSettings,
    CoverageConfig,
    EvalConfig,
    FossilConfig,
    OpenCutConfig,
    RetrievalConfig,
    with_overrides,
)
from fossil.records import SOURCES

# how to install `fossil serve`'s extra from a clone (the distribution is not on PyPI)
SERVE_EXTRA = 'pip install -e ".[serve]"'

if TYPE_CHECKING:
    from fossil.concepts import Concepts
    from fossil.db.protocols import Collection
    from fossil.models.loading import ModelBundle
    from fossil.pipeline.ingest_config import StoreAddress


def parse_concepts(text: str) -> Concepts:
    """``--concepts "a, b"`` → the checked concepts (:meth:`fossil.concepts.Concepts.parse`,
    whose messages then name the flag)."""
    from fossil.concepts import Concepts

    return Concepts.parse(text, "--concepts")


def add_store_option(p: Any, note: str = "see `fossil ingest`", *, required: bool = False) -> None:
    """--store DIR; ``note``: what DIR is to this command."""
    p.add_argument(
        "--store", default=None, required=required, metavar="DIR",
        help=f"store directory ({note})",
    )  # fmt: skip


def add_json_option(p: Any, what: str = "print the summary as JSON") -> None:
    """--json; ``what``: what it prints (or writes)."""
    p.add_argument("--json", action="store_true", help=what)


def add_qdrant_api_key_option(p: Any) -> None:
    """--qdrant-api-key KEY (default $QDRANT_API_KEY): the Qdrant server's key, never the
    key of `fossil serve` (its --api-key)."""
    p.add_argument(
        "--qdrant-api-key",
        default=os.environ.get("QDRANT_API_KEY"),
        metavar="KEY",
        help="Qdrant server API key (default: $QDRANT_API_KEY)",
    )


class DeprecatedAlias(argparse.Action):
    """An old spelling of a flag, hidden from --help (``help=argparse.SUPPRESS``): it sets
    the new flag's value and leaves a line in ``args.deprecated``, which ``fossil.cli`` logs
    as a warning once logging is set up."""

    def __init__(self, option_strings: Any, dest: str, *, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, values)
        notes = list(getattr(namespace, "deprecated", ()))
        notes.append(f"{option} is deprecated and will be removed: use {self.new}")
        namespace.deprecated = notes


def add_server_options(p: Any) -> None:
    """--qdrant-url, --qdrant-api-key (default $QDRANT_API_KEY), --catalog."""
    p.add_argument(
        "--qdrant-url",
        default=None,
        metavar="URL",
        help="Qdrant server holding the vectors (default: the embedded store in DIR)",
    )
    add_qdrant_api_key_option(p)
    p.add_argument(
        "--catalog",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL of the catalog, e.g. postgresql+psycopg2://... "
        "(default: sqlite in DIR/catalog.sqlite)",
    )


def add_preset_option(p: Any, sets: str = "N, K and γ", fallback: str | None = None) -> None:
    """--preset NAME (a Table 3 setting); ``sets``: what it sets for this command (γ only
    where the command scores), ``fallback``: what holds without it on a collection that
    records no settings (default: the paper's values)."""
    paper, scores = FossilConfig(), "γ" in sets
    if fallback is None:
        fallback = f"N={paper.retrieval.N}, K={paper.retrieval.K}"
        fallback += f", γ={paper.scoring.gamma}" if scores else ""
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help=f"a benchmark's best setting (paper Table 3) for {sets}; default: the collection's "
        f"(see `fossil info`), else {fallback}; {'--n/--k/--gamma' if scores else '--n/--k'} "
        "override it",
    )


PROFILES_HELP = (
    "'paper' (SD 2.1 base, DINOv2-L, CLIP-L, design §5), 'tiny' (random tiny models: smoke tests)"
)


def add_models_options(p: Any, note: str = "", *, ingest: bool = False) -> None:
    """--models PROFILE and --device.  Read side (default): the profile defaults to the
    collection's models and may be 'demo'; ``note``: what the command takes from it.
    ``ingest``: a new store's default is the paper's, and --device may list one device per
    worker."""
    if ingest:
        names, default = PROFILES_HELP, "the models an existing store was built with, else paper"
        device = (
            "torch device, or a comma-separated list given to workers in turn, e.g. "
            "cuda:0,cuda:1 (default: cuda if available, else cpu)"
        )
    else:
        names = f"{PROFILES_HELP}, 'demo' (the synthetic world's)"
        default = (
            "the models the collection was built with, the synthetic world's for a `fossil "
            "demo` store; it must match them"
        )
        device = "torch device (default: auto)"
    p.add_argument(
        "--models", default=None, metavar="PROFILE",
        help=f"model profile: {names} or a TOML file{note} (default: {default})",
    )  # fmt: skip
    p.add_argument("--device", default=None, metavar="D", help=device)


def add_retrieval_options(p: Any) -> None:
    """--n N and --k K (RetrievalConfig.N, .K; ``None``: the collection's, else the paper's)."""
    default = "default: the collection's (see `fossil info`), else"
    paper = RetrievalConfig()
    p.add_argument(
        "--n", type=int, default=None, metavar="N",
        help=f"references per concept, N ({default} {paper.N})",
    )  # fmt: skip
    p.add_argument(
        "--k", type=int, default=None, metavar="K",
        help=f"prototypes per concept, K ≤ N ({default} {paper.K})",
    )  # fmt: skip


def add_per_concept_option(p: Any, what: str) -> None:
    """--per-concept M, read by :func:`per_concept` (default N, at most
    :data:`~fossil.ingest.concepts.MAX_PER_CONCEPT`); ``what``: when it is used."""
    from fossil.ingest.concepts import MAX_PER_CONCEPT

    p.add_argument(
        "--per-concept", type=int, default=None, metavar="M",
        help=f"{what}: references generated per concept, one templated caption and image "
        "each (default: N, so that a concept's N nearest references are its own; for `fossil "
        f"ingest`, which has no --n, the default N, {RetrievalConfig().N}; at most "
        f"{MAX_PER_CONCEPT})",
    )  # fmt: skip


REGIONS_HELP = (
    "region proposer: opencut (the paper's OpenCut, default), opencut-nocrf (without its "
    "CRF), subdivide-1 / subdivide-2 (OpenCut, each region split up to 1 / 2 levels more), "
    "shrinking-graph (covered patches leave the graph between τ values), superpixels "
    "(Felzenszwalb's, FreeDA's local regions), patches (every patch on its own). The OpenCut "
    "flags below change what the OpenCut names run"
)


def add_references_option(p: Any) -> None:
    """--references SOURCE (RetrievalConfig.references)."""
    p.add_argument(
        "--references",
        choices=SOURCES,
        default="all",
        help="which references a concept retrieves: all (default), generated (Stable "
        "Diffusion images and their heat maps) or labelled (labelled photos, `fossil ingest "
        "--labelled`)",
    )


def add_segmentation_options(p: Any) -> None:
    """--n, --k, --gamma, --references, --no-opencut, --no-crf, --crf-workers,
    --opencut-variant, --paper-taus, --opencut-subdivide (read by :func:`build_config`)."""
    default = "default: the collection's (see `fossil info`), else"
    paper = FossilConfig()
    add_references_option(p)
    add_retrieval_options(p)
    p.add_argument(
        "--gamma", type=float, default=None,
        help=f"γ of eq. 5: weight of the max over prototypes ({default} {paper.scoring.gamma})",
    )  # fmt: skip
    p.add_argument(
        "--regions", choices=REGION_PROPOSERS, default=None, metavar="NAME", help=REGIONS_HELP
    )
    p.add_argument(
        "--no-opencut",
        action="store_true",
        help="label every patch on its own (Fig. 3 ablation; = --regions patches)",
    )
    p.add_argument(
        "--no-crf",
        action="store_true",
        help="skip OpenCut's CRF (faster; = --regions opencut-nocrf)",
    )
    p.add_argument(
        "--crf-workers",
        type=int,
        default=0,
        metavar="N",
        help="processes for a crop's per-mask CRFs, the same masks either way (default 0: one "
        "per CPU core; 1: in this process)",
    )
    p.add_argument(
        "--opencut-variant",
        choices=OPENCUT_VARIANTS,
        default=None,
        help="paper (default): every τ cuts the full patch graph and refines against the "
        "accepted masks; shrinking-graph: covered patches leave the graph between τ values "
        "(= --regions shrinking-graph)",
    )
    p.add_argument(
        "--paper-taus",
        action="store_true",
        help="the paper's absolute τ schedule (set on DINO ViT-B/8 keys) instead of the default "
        "quantile one, which carries across backbones (README: OpenCut on real photos)",
    )
    p.add_argument(
        "--opencut-subdivide",
        type=int,
        default=None,
        metavar="DEPTH",
        help="split each OpenCut region again, up to DEPTH levels (fossil's departure from the "
        "paper, default 0: finer regions on cluttered photos, README: OpenCut on real photos; "
        "1 and 2 = --regions subdivide-1 / subdivide-2)",
    )


def add_coverage_options(p: Any) -> None:
    """--extend, --per-concept and the coverage thresholds (read by :func:`coverage_config`)."""
    defaults = CoverageConfig()
    p.add_argument(
        "--extend",
        action="store_true",
        help="first generate references for the concepts the collection does not cover "
        "(--per-concept images each, with the collection's models; kept for later queries), "
        "then answer.  Costs one Stable Diffusion image (a full denoising run) per reference",
    )
    add_per_concept_option(p, "--extend")
    p.add_argument(
        "--min-best",
        type=float,
        default=defaults.min_best,
        metavar="S",
        help="coverage: the best reference's similarity must reach S (default: the value "
        "measured for the text encoder, see benchmarks/coverage_thresholds.py)",
    )
    p.add_argument(
        "--min-nth",
        type=float,
        default=defaults.min_nth,
        metavar="S",
        help="coverage: the N-th reference's similarity must reach S (default: measured)",
    )
    p.add_argument(
        "--min-lemma-fraction",
        type=float,
        default=defaults.min_lemma_fraction,
        metavar="F",
        help="coverage: a concept whose own noun is carried by this fraction of its N "
        "references is covered whatever the similarities (default: %(default)s)",
    )


def coverage_config(args: argparse.Namespace) -> CoverageConfig:
    return CoverageConfig(
        min_best=args.min_best,
        min_nth=args.min_nth,
        min_lemma_fraction=args.min_lemma_fraction,
    )


def per_concept(args: argparse.Namespace, N: int) -> int:
    """--per-concept, defaulting to N (a concept's N neighbours are then its own)."""
    from fossil.ingest.concepts import MAX_PER_CONCEPT

    M = N if args.per_concept is None else args.per_concept
    if M < 1:
        raise ValueError(f"--per-concept ({M}) must be >= 1")
    if M > MAX_PER_CONCEPT:
        if args.per_concept is not None:
            raise ValueError(f"--per-concept ({M}) must be <= {MAX_PER_CONCEPT}")
        M = MAX_PER_CONCEPT
    return M


def check_output_file(path: str | os.PathLike[str], flag: str) -> None:
    """Refuse, before any work, an output file whose folder cannot be made or written."""
    folder = Path(path).expanduser().absolute().parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: the folder {existing} is not writable")


def collection_config(settings: CollectionSettings | None) -> FossilConfig:
    """The paper's defaults with the collection's ``settings`` (:func:`store_settings`)."""
    return FossilConfig() if settings is None else settings.apply(FossilConfig())


def build_config(
    args: argparse.Namespace,
    preset: str | None,
    settings: CollectionSettings | None = None,
    *,
    default_preset: str | None = None,
) -> FossilConfig:
    """The paper's defaults, then the collection's ``settings`` (:func:`store_settings`),
    then the Table 3 ``preset`` when given (else ``default_preset``, a benchmark's own, when
    the settings record no N, K or γ), then the overrides of :func:`add_segmentation_options`."""
    base = collection_config(settings)
    if preset is None and not (settings is not None and settings.sets_retrieval):
        preset = default_preset
    config = with_overrides(
        base,
        preset,
        N=args.n,
        K=args.k,
        gamma=args.gamma,
        regions=regions_choice(args),
    )
    return replace(
        config,
        retrieval=replace(config.retrieval, references=args.references),
        opencut=opencut_config(args, config.opencut),
    )


def is_demo_store(args: argparse.Namespace, collection: Collection) -> bool:
    """``--models demo``, or no --models for a store `fossil demo` built (its
    ``collection_meta`` names the synthetic models)."""
    from fossil.demo.settings import DEMO_PROFILE, is_demo_meta

    if getattr(args, "models", None) == DEMO_PROFILE:
        return True
    return getattr(args, "models", None) is None and is_demo_meta(collection.meta)


def store_settings(collection: Collection) -> CollectionSettings | None:
    """The settings the collection records (``fossil info`` shows them); a demo store built
    before fossil recorded them gets the demo's."""
    from fossil.demo.settings import demo_settings, is_demo_meta

    recorded = collection.catalog.get_settings()
    if recorded is None and is_demo_meta(collection.meta):
        return demo_settings()
    return recorded


def regions_choice(args: argparse.Namespace) -> str | None:
    """--regions, with --no-opencut as ``patches`` (``None``: neither given).  The OpenCut
    flags (--no-crf, ...) change what the OpenCut names run and nothing else."""
    regions = args.regions
    if args.no_opencut:
        if regions not in (None, "patches"):
            raise ValueError(
                f"--no-opencut is --regions patches; it contradicts --regions {regions}"
            )
        regions = "patches"
    return regions


def opencut_config(args: argparse.Namespace, base: OpenCutConfig) -> OpenCutConfig:
    """``base`` with --paper-taus, --opencut-variant, --opencut-subdivide, --no-crf and
    --crf-workers applied."""
    opencut = OpenCutConfig.paper_absolute() if args.paper_taus else base
    return replace(
        opencut,
        crf=replace(opencut.crf, enabled=not args.no_crf, workers=args.crf_workers),
        variant=args.opencut_variant or opencut.variant,
        subdivide_depth=(
            opencut.subdivide_depth if args.opencut_subdivide is None else args.opencut_subdivide
        ),
    )


def store_address(args: argparse.Namespace) -> StoreAddress:
    """Where --store / --qdrant-url / --catalog say the collection is."""
    from fossil.pipeline.ingest_config import StoreAddress

    if not args.store and not args.qdrant_url:
        raise ValueError("give --store DIR (or --qdrant-url with --catalog)")
    return StoreAddress(args.store, args.qdrant_url, args.qdrant_api_key, args.catalog)


def open_store(args: argparse.Namespace, *, release_stale_leases: bool = False) -> Collection:
    """The collection of --store / --qdrant-url / --catalog (existing; never created).
    ``release_stale_leases``: this command will claim or remove captions
    (:func:`fossil.db.open.open_collection`)."""
    return store_address(args).open(release_stale_leases=release_stale_leases)


def load_command_models(
    args: argparse.Namespace,
    command: str,
    collection: Collection | None,
    *,
    extend: bool = False,
    sizes: EvalConfig | None = None,
) -> ModelBundle:
    """:func:`fossil.pipeline.models.collection_models` with --models and --device; the
    synthetic world's models for a store `fossil demo` built (or ``--models demo``)."""
    from fossil.pipeline.models import collection_models

    if collection is not None and is_demo_store(args, collection):
        from fossil.demo.world import demo_models
        from fossil.models.loading import command_roles

        roles = command_roles(command, extend=extend)
        return demo_models(collection.meta.text_encoder, args.device, roles)
    return collection_models(
        command, collection, profile=args.models, device=args.device, extend=extend, sizes=sizes
    )
