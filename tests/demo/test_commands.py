"""Every command on a store `fossil demo` built, as a newcomer runs them: no --models, no
--n.  The store names the synthetic models (collection_meta) and records the settings it
was built for (N=40, K=1, 256 px sides), so query, segment, eval and info use them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fossil.cli import main
from fossil.commands.demo import next_commands, scene_concepts
from fossil.config import RetrievalConfig
from fossil.demo.scenes import CLASSES_FILE, IMAGE_DIR, write_scenes
from fossil.demo.settings import DemoConfig, demo_fossil_config, demo_settings
from fossil.demo.world import create_world_store, demo_models, ingest_world

# 60 captions give ~8 references per material: this small world records N=6 (the full
# demo's 500 captions record N=40), so the commands must read N from the store
SMALL = DemoConfig(
    captions=60, seed=1, fossil=replace(demo_fossil_config(), retrieval=RetrievalConfig(N=6, K=1))
)
SETTINGS = demo_settings(SMALL.fossil)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo world (60 captions, 3 scenes) built as `fossil demo` builds it."""
    out = tmp_path_factory.mktemp("demo-world")
    models = demo_models()
    collection = create_world_store(out / "store", models, SMALL)
    try:
        ingest_world(out, collection, models, SMALL, progress=False)
    finally:
        collection.close()
    write_scenes(out / "scenes", 3, seed=2)
    return out


def test_query_uses_the_demo_models_and_its_n_without_flags(world: Path, capsys) -> None:
    argv = ["query", "grass", "water", "--store", str(world / "store"), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["N"], report["K"]) == (SETTINGS.N, SETTINGS.K) == (6, 1)
    for concept in report["concepts"]:
        assert concept["coverage"]["covered"], concept["coverage"]
        assert len(concept["prototypes"]) == 1
    # flags still win over the recorded settings
    assert main([*argv[:-1], "--n", "3", "--k", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["N"] == 3


def test_segment_a_held_out_scene_without_models_or_settings_flags(
    world: Path, tmp_path: Path, capsys, caplog
) -> None:
    scene = sorted((world / "scenes" / IMAGE_DIR).glob("*.jpg"))[0]
    concepts = scene_concepts(world / "scenes", scene.stem)
    assert concepts
    argv = ["segment", str(scene), "--concepts", ", ".join(concepts), "--no-progress",
            "--store", str(world / "store"), "--out", str(tmp_path), "--json"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    labels = np.asarray(Image.open(report["labels"]))
    assert labels.shape == (256, 256) and labels.max() < len(concepts)
    assert report["regions"] and all(r["references"] for r in report["regions"])
    assert "does not cover" not in caplog.text  # the demo's own N: every concept covered


def test_eval_on_the_scenes_reproduces_the_demo_protocol(world: Path, tmp_path: Path, capsys):
    scenes = world / "scenes"
    argv = ["eval", "ade20k", "--data", str(scenes), "--classes", str(scenes / CLASSES_FILE),
            "--store", str(world / "store"), "--no-opencut", "--no-cache", "--no-progress",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "results.json").read_text())["config"]
    assert (config["N"], config["K"], config["preset"]) == (6, 1, "collection")
    assert config["eval"]["crop"] == 256 and config["profile"] == "demo"


def test_info_says_what_the_store_is_and_which_settings_commands_use(world: Path, capsys):
    assert main(["info", "--store", str(world / "store")]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC world of 15 procedural materials" in out
    assert "built for      N 6, K 1, γ 0.5, short side 256, crop 256, stride 128" in out
    assert main(["info", "--store", str(world / "store"), "--json"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings == json.loads(json.dumps(SETTINGS.as_dict()))


def test_the_printed_next_commands_name_this_world(world: Path) -> None:
    text = next_commands(world)
    store = str(world / "store")
    assert f"fossil serve --store {store}" in text
    assert f"fossil query grass sky --store {store}" in text
    assert "fossil segment" in text and "--models" not in text and "--n " not in text
