"""A small `fossil demo`: the whole pipeline (real spaCy, MiniLM, ingest loop, Qdrant Edge,
SQLite catalog, faiss K-Means, OpenCut, eq. 5, eval runner) on the synthetic world, with a
floor on mIoU that broken stages fall below."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fossil.cli import main
from fossil.config import RetrievalConfig
from fossil.demo.world import (
    DemoConfig,
    DemoModels,
    demo_fossil_config,
    demo_models,
    evaluate_world,
    open_world,
)
from fossil.demo.world import run_demo as run_world

SMALL = DemoConfig(
    captions=150,
    scenes=8,
    overlays=2,
    fossil=replace(demo_fossil_config(), retrieval=RetrievalConfig(N=15, K=1)),  # ~23 refs each
)
# Measured with SMALL (seed 0): per patch 0.64, OpenCut 0.51 (see the issue note); chance
# with 15 classes and 2-4 regions per scene is far below.  A broken stage lands under 0.25.
FLOOR = {"per_patch": 0.50, "opencut": 0.40}
BROKEN_CEILING = 0.25


@pytest.fixture(scope="module")
def models() -> DemoModels:
    return demo_models()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, models: DemoModels):
    out = tmp_path_factory.mktemp("world") / "demo"
    return run_world(out, SMALL, models=models, progress=False)


def test_demo_builds_the_store_and_clears_the_floor(world) -> None:
    for name, floor in FLOOR.items():
        assert world.miou[name] >= floor, (name, world.miou)
    assert world.references >= SMALL.captions  # captions mention 1-4 materials
    summary = json.loads((world.out / "demo.json").read_text())
    assert summary["synthetic"] is True
    assert summary["miou"] == pytest.approx(world.miou)
    assert (world.out / "store" / "catalog.sqlite").is_file()
    assert (world.out / "references.png").stat().st_size > 0
    panels = sorted((world.out / "panels").glob("*.png"))
    assert len(panels) == SMALL.overlays
    for name in FLOOR:
        predictions = list((world.out / "eval" / name / "predictions").glob("*.png"))
        assert len(predictions) == SMALL.scenes
        assert (world.out / "eval" / name / "report.md").is_file()


def _shuffled(prototypes: list[np.ndarray]) -> list[np.ndarray]:
    """Wrong retrieval: every concept gets another concept's prototypes."""
    return prototypes[1:] + prototypes[:1]


def _negated(prototypes: list[np.ndarray]) -> list[np.ndarray]:
    """Wrong eq. 5 sign: the least similar concept wins."""
    return [-p for p in prototypes]


@pytest.mark.parametrize("broken", [_shuffled, _negated], ids=["shuffled", "negated"])
def test_a_broken_stage_falls_below_the_floor(world, models, tmp_path: Path, broken) -> None:
    collection = open_world(world.out, models)
    try:
        evaluation = evaluate_world(
            tmp_path,
            collection,
            models,
            SMALL,
            world.out / "scenes",
            runs=("per_patch",),
            prepare=broken,
            progress=False,
        )
    finally:
        collection.close()
    assert evaluation.miou["per_patch"] < BROKEN_CEILING < FLOOR["per_patch"]


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path, capsys) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
