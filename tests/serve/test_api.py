"""The ``fossil serve`` HTTP API (FastAPI's TestClient) on a ``--models tiny`` store."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from fossil.cli import build_parser, main
from fossil.commands.serve import build_app
from fossil.db.open import CATALOG_FILE
from fossil.pipeline.segmenter import SegmentationResult
from fossil.serve.app import ServeSettings, create_app
from fossil.serve.service import Segmentation, Service
from tests.serve.conftest import park, png, queued_behind_first

CONCEPTS = "dog, car, tree"
LOCAL = "http://127.0.0.1"  # the server answers local Host names only (DNS rebinding)


@pytest.fixture(scope="module")
def app(store: Path) -> Iterator[FastAPI]:
    # no --models: the models the collection records (tiny)
    args = build_parser().parse_args(["serve", "--store", str(store)])
    args.no_crf = True
    app, collection = build_app(args)
    yield app
    collection.close()


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url=LOCAL)


@pytest.fixture(scope="module")
def service(app: FastAPI) -> Service:
    return app.state.service


@pytest.fixture(scope="module")
def stored_ids(service: Service) -> set[str]:
    return {p.id for p in service.collection.refs.iter_points()}


@pytest.fixture(scope="module")
def segmented(client: TestClient) -> dict[str, Any]:
    """One real segmentation of a 130×90 picture (two sliding windows after the resize)."""
    files = {"image": ("park.png", png(park()), "image/png")}
    response = client.post("/segment", files=files, data={"concepts": CONCEPTS})
    assert response.status_code == 200, response.text
    return response.json()


def decode(data_url: str) -> np.ndarray:
    header, body = data_url.split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body))))


def post(client: TestClient, concepts: str = CONCEPTS, image: bytes | None = None, **fields):
    files = {"image": ("park.png", png(park(40, 40)) if image is None else image, "image/png")}
    return client.post("/segment", files=files, data={"concepts": concepts, **fields})


def test_segment_returns_label_map_overlay_and_per_region_explanations(
    segmented: dict[str, Any], stored_ids: set[str]
) -> None:
    assert segmented["size"] == [130, 90]
    assert [c["concept"] for c in segmented["concepts"]] == ["dog", "car", "tree"]
    labels = decode(segmented["labels"])
    assert labels.shape == (90, 130) and labels.max() < 3
    shares = [c["pixels"] for c in segmented["concepts"]]
    assert np.allclose(shares, np.bincount(labels.ravel(), minlength=3) / labels.size)
    overlay = decode(segmented["overlay"])
    assert overlay.shape[0] >= 90 and overlay.shape[1] > 130  # the legend sits on the right
    assert all(c["color"].startswith("#") and len(c["color"]) == 7 for c in segmented["concepts"])
    assert all({"covered", "reason"} <= set(c["coverage"]) for c in segmented["concepts"])
    assert segmented["regions"], "OpenCut proposed no region"
    for region in segmented["regions"]:
        assert region["concept"] == segmented["concepts"][region["concept_index"]]["concept"]
        assert 0 < region["score"] < 1 and 0 <= region["pixels"] <= 1
        assert 0 < len(region["references"]) <= 3
        assert {r["id"] for r in region["references"]} <= stored_ids
        for ref in region["references"]:
            assert ref["thumbnail"] == f"/references/{ref['id']}/thumbnail"


def test_region_map_places_each_region_where_its_point_is(segmented: dict[str, Any]) -> None:
    rgb = decode(segmented["regions_map"]).astype(np.int64)
    assert rgb.shape == (90, 130, 3)
    code = rgb[..., 0] + 256 * rgb[..., 1]  # region index + 1, 0: none
    regions = segmented["regions"]
    assert code.max() <= len(regions)
    total = code.size
    for region in regions:
        share = float((code == region["id"] + 1).sum() / total)
        assert region["pixels"] == pytest.approx(share)
        if region["point"] is None:
            assert share == 0
        else:
            x, y = region["point"]
            assert code[y, x] == region["id"] + 1
    assert any(r["point"] for r in regions)


def test_thumbnails_of_the_explanations_are_served(
    client: TestClient, segmented: dict[str, Any]
) -> None:
    url = segmented["regions"][0]["references"][0]["thumbnail"]
    stored = client.get(url)
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(stored.content)) as image:
        assert image.mode == "RGBA"  # the noun mask is the alpha channel
        size = image.size
    highlighted = client.get(url, params={"highlight": "true"})
    assert highlighted.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(highlighted.content)) as image:
        assert image.mode == "RGB" and image.size == size
    missing = client.get("/references/no-such-id/thumbnail")
    assert missing.status_code == 404 and "no-such-id" in missing.json()["detail"]


def test_query_lists_references_prototypes_and_coverage(
    client: TestClient, stored_ids: set[str]
) -> None:
    response = client.get("/query", params={"concepts": "dog, car", "n": 4, "k": 2, "top": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["N"], body["K"]) == (4, 2)
    assert [c["concept"] for c in body["concepts"]] == ["dog", "car"]
    for concept in body["concepts"]:
        assert concept["retrieved"] == 4 and concept["prototypes"] == 2
        assert len(concept["references"]) == 3
        assert {r["id"] for r in concept["references"]} <= stored_ids
        scores = [r["score"] for r in concept["references"]]
        assert scores == sorted(scores, reverse=True)
        assert concept["coverage"]["concept"] == concept["concept"]
        assert concept["coverage"]["retrieved"] == 4


def test_info_says_what_fossil_info_says(service: Service, store: Path) -> None:
    client = TestClient(create_app(service, ServeSettings(api_key="k")), base_url=LOCAL)
    body = client.get("/info", headers={"X-API-Key": "k"}).json()  # paths: behind the key
    assert body["meta"]["text_encoder"] == "fossil-tiny/text"
    assert body["references"] == body["catalog_references"] == 6
    assert body["captions"]["done"] == 3
    assert body["settings"] is None  # an ingested store records none: the paper's defaults
    assert body["store"] == str(store.resolve())
    assert (store / CATALOG_FILE).is_file() and body["disk_bytes"][CATALOG_FILE] > 0


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/segment", "/query", "/references/{point_id}/thumbnail", "/info"} <= set(paths)
    assert "/" not in paths


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    # offline: nothing is loaded from another host
    for text in (page.text, client.get("/static/app.js").text):
        assert "http://" not in text and "https://" not in text


@pytest.mark.parametrize(
    ("concepts", "fields", "message"),
    [
        ("", {}, "concepts is empty"),  # the form field's name, not the CLI's --concepts
        ("dog,,car", {}, "empty concept at position 2"),
        ("dog, Dog", {}, "duplicate concepts: 'dog'"),
        ("dog\x1b[2J", {}, "contains U+001B (a control character)"),
        ("\u202edog", {}, "contains U+202E (a bidi control)"),
        ("\ufeffdog", {}, "contains U+FEFF (a byte-order mark"),
        ("dog", {"n": "3", "k": "5"}, "K (5) must be <= N (3)"),
        ("dog", {"preset": "nope"}, "nope"),
        ("dog", {"gamma": "1.5"}, "gamma (1.5) must be in [0, 1]"),
    ],  # fmt: skip
)
def test_bad_requests_get_the_messages_of_the_cli(
    client: TestClient, concepts: str, fields: dict[str, str], message: str
) -> None:
    response = post(client, concepts, **fields)
    assert "--" not in response.json()["detail"]  # names API fields, not CLI flags
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_a_request_picks_its_region_proposer_by_name(client: TestClient) -> None:
    per_patch = post(client, "dog, car", regions="patches")
    assert per_patch.status_code == 200, per_patch.text
    assert per_patch.json()["settings"]["regions"] == "patches" and not per_patch.json()["regions"]
    colours = post(client, "dog, car", regions="superpixels")
    assert colours.status_code == 200, colours.text
    assert colours.json()["settings"]["regions"] == "superpixels" and colours.json()["regions"]
    default = post(client, "dog, car")  # the server's own: OpenCut
    assert default.json()["settings"]["regions"] == "opencut"


def test_an_unknown_region_proposer_is_a_one_line_400_naming_the_field_and_the_choices(
    client: TestClient,
) -> None:
    from fossil.config import REGION_PROPOSERS

    response = post(client, "dog", regions="watershed")
    detail = response.json()["detail"]
    assert response.status_code == 400
    assert detail.startswith("regions 'watershed' unknown; choose one of") and "\n" not in detail
    assert all(name in detail for name in REGION_PROPOSERS) and "--" not in detail
    response = post(client, "dog", regions="superpixels", no_opencut="true")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "no_opencut is regions=patches; it contradicts regions='superpixels'"
    )


def test_an_unreadable_image_is_refused_by_name(client: TestClient) -> None:
    files = {"image": ("broken.jpg", b"not an image", "image/jpeg")}
    response = client.post("/segment", files=files, data={"concepts": "dog"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("image 'broken.jpg' cannot be read")


def test_an_image_over_the_pixel_limit_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fossil.pipeline.images

    monkeypatch.setattr(fossil.pipeline.images, "MAX_PIXELS", 1000)  # fossil segment's limit
    response = post(client, "dog")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "image 'park.png' is 40x40; at most 1000 pixels are accepted" in detail


def test_an_upload_over_the_byte_limit_gets_413(service: Service) -> None:
    client = TestClient(create_app(service, ServeSettings(max_upload_bytes=1000)), base_url=LOCAL)
    noisy = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert 1000 < len(png(noisy)) < 65536  # refused by the route
    huge = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert len(png(huge)) > 1000 + 65536  # refused by its Content-Length, before parsing
    for image in (png(noisy), png(huge)):
        response = post(client, "dog", image=image)
        assert response.status_code == 413
        assert "over the limit of 1000 bytes" in response.json()["detail"]


def test_a_chunked_upload_is_cut_off_at_the_limit(service: Service) -> None:
    client = TestClient(create_app(service, ServeSettings(max_upload_bytes=1000)), base_url=LOCAL)
    boundary = "fossilboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="concepts"\r\n\r\ndog\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield head
        for _ in range(200):
            yield b"x" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = client.post("/segment", content=body(), headers=headers)
    assert response.status_code == 413, response.text
    assert "over the limit of 1000 bytes" in response.json()["detail"]


def test_query_refuses_bad_concepts_and_top(client: TestClient) -> None:
    detail = client.get("/query").json()["detail"]
    assert detail.startswith("concepts is empty"), detail
    response = client.get("/query", params={"concepts": "dog", "top": 0})
    assert response.status_code == 400 and "top (0) must be >= 1" in response.json()["detail"]


def test_an_api_key_guards_everything_but_the_page(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    client = TestClient(create_app(service, ServeSettings(api_key="s3cret")), base_url=LOCAL)
    assert client.get("/").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    for path in ("/info", "/query?concepts=dog", "/openapi.json", "/references/x/thumbnail"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
    assert post(client, "dog").status_code == 401
    assert client.get("/info", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert caplog.records and "s3cret" not in caplog.text  # requests are logged, the key never


def test_a_non_local_host_needs_an_api_key(
    store: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOSSIL_API_KEY", raising=False)
    argv = ["serve", "--store", str(store), "--models", "tiny", "--host", "0.0.0.0"]
    started = time.perf_counter()
    assert main(argv) == 1
    assert "give an API key with $FOSSIL_API_KEY" in capsys.readouterr().err
    assert time.perf_counter() - started < 5  # refused before any model loads


def canned(service: Service, concepts: list[str], size: tuple[int, int]) -> Segmentation:
    """A segmentation with every pixel on the first concept (for the queue tests)."""
    labels = np.zeros(size, np.int64)
    scores = np.zeros((len(concepts), *size), np.float32)
    result = SegmentationResult(list(concepts), labels, scores, [], [])
    regions = np.full(size, -1, np.int32)
    return Segmentation(result, regions, size, service.session.coverage(concepts), 0.0)


class Blocking:
    """Stands in for ``Service.segment``: the first call waits for ``release``; every call
    records how many calls were inside at once."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.release = threading.Event()
        self.calls = 0
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, concepts: list[str], config: Any) -> Segmentation:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            if first:
                assert self.release.wait(30), "the test never released the first call"
            return canned(self.service, concepts, image.shape[:2])
        finally:
            with self._lock:
                self.inside -= 1


def test_a_request_past_the_time_limit_gets_503_and_the_server_stays_healthy(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = Blocking(service)
    monkeypatch.setattr(service, "segment", blocking)
    client = TestClient(create_app(service, ServeSettings(time_limit=0.5)), base_url=LOCAL)
    started = time.perf_counter()
    response = post(client, "dog")
    assert response.status_code == 503
    assert 0.5 <= time.perf_counter() - started < 5
    assert "time limit of 0.5 s" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"
    assert client.get("/info").status_code == 200  # answers while the model thread is busy
    queued = post(client, "dog")  # waits behind the first, past the limit: dropped
    assert queued.status_code == 503
    blocking.release.set()
    deadline = time.monotonic() + 10
    while blocking.inside and time.monotonic() < deadline:
        time.sleep(0.01)
    response = post(client, "dog")
    assert response.status_code == 200, response.text
    assert response.json()["concepts"][0]["pixels"] == 1.0
    assert blocking.calls == 2  # the dropped request never ran


def test_model_requests_run_one_at_a_time(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = Blocking(service)
    monkeypatch.setattr(service, "segment", blocking)
    app = create_app(service, ServeSettings(time_limit=30))

    def send() -> int:
        return post(TestClient(app, base_url=LOCAL), "dog").status_code

    with queued_behind_first(send, blocking) as answers:
        assert blocking.calls == 1  # the others are queued, not running
    assert answers == [200, 200, 200]
    assert blocking.calls == 3 and blocking.most_inside == 1
