"""``fossil serve --models demo`` on a small `fossil demo` store: the synthetic world's models
(real MiniLM text encoder and spaCy) serve a held-out scene and concept queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fossil.cli import build_parser
from fossil.commands.serve import build_app
from fossil.db.open import open_collection
from fossil.demo.scenes import held_out_scenes
from fossil.demo.world import DemoConfig, _meta, demo_models, ingest_world
from tests.serve.conftest import png


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    models = demo_models()
    collection = open_collection(out / "store", meta=_meta(models), create=True)
    try:
        ingest_world(out, collection, models, DemoConfig(captions=60, seed=1), progress=False)
    finally:
        collection.close()
    return out / "store"


@pytest.fixture(scope="module")
def client(demo_store: Path) -> Iterator[TestClient]:
    # no --models: the store's synthetic dense encoder says it is a demo store
    args = build_parser().parse_args(["serve", "--store", str(demo_store)])
    app, collection = build_app(args)
    try:
        yield TestClient(app, base_url="http://localhost")
    finally:
        collection.close()


def test_a_held_out_scene_is_segmented_with_the_demo_settings(client: TestClient) -> None:
    scene = held_out_scenes(1, seed=5)[0]
    files = {"image": ("scene.png", png(scene.image), "image/png")}
    response = client.post("/segment", files=files, data={"concepts": "lawn, heavens, ocean"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["settings"] == {
        "N": 40,
        "K": 1,
        "gamma": 0.5,
        "opencut": True,
        "regions": "opencut",
    }
    assert body["size"] == [scene.image.shape[1], scene.image.shape[0]]
    assert sum(c["pixels"] for c in body["concepts"]) == pytest.approx(1.0)
    assert body["regions"] and all(r["references"] for r in body["regions"])


def test_query_tells_which_concepts_the_store_covers(client: TestClient) -> None:
    params = {"concepts": "grass, solar panel", "n": 5, "top": 2}  # the store has ~8 grass
    body = client.get("/query", params=params).json()
    grass, panel = body["concepts"]
    assert grass["coverage"]["covered"] and not panel["coverage"]["covered"], body
    assert [r["noun"] for r in grass["references"]] == ["grass", "grass"]
