"""What ``fossil serve`` holds whatever a request asks (issue 25): one request's decoding,
model work and response at a time, within the time limit; uploads downscaled before any
float copy; a bounded number of concepts; only the expected ``Host`` names; no local path in
an answer the API key does not guard."""

from __future__ import annotations

import io
import json
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

import fossil.serve.app
from fossil.cli import build_parser
from fossil.commands.serve import build_app
from fossil.serve.app import ServeSettings, create_app
from fossil.serve.service import Segmentation, Service
from tests.serve.conftest import park, png, queued_behind_first
from tests.serve.test_api import Blocking, canned

LOCAL = "http://127.0.0.1"  # a Host the server accepts when bound to localhost


@pytest.fixture(scope="module")
def app(store: Path) -> Iterator[FastAPI]:
    args = build_parser().parse_args(["serve", "--store", str(store), "--no-crf"])
    app, collection = build_app(args)
    yield app
    collection.close()


@pytest.fixture(scope="module")
def service(app: FastAPI) -> Service:
    return app.state.service


def client_of(service: Service, **settings: Any) -> TestClient:
    return TestClient(create_app(service, ServeSettings(**settings)), base_url=LOCAL)


def post(client: TestClient, concepts: str = "dog", image: bytes | None = None):
    files = {"image": ("up.png", png(park(40, 40)) if image is None else image, "image/png")}
    return client.post("/segment", files=files, data={"concepts": concepts})


def gray_png(width: int, height: int) -> bytes:
    """A flat grey PNG: a few KB for millions of pixels."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 90).save(buffer, format="PNG")
    return buffer.getvalue()


def canned_segment(service: Service) -> Any:
    """Stands in for ``Service.segment``: every pixel on the first concept, at once."""
    return lambda image, names, _: canned(service, names, image.shape[:2])


class Stages:
    """Records, per stage of a /segment request, the thread it ran on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, service: Service) -> None:
        self.threads: dict[str, set[str]] = {"decode": set(), "segment": set(), "respond": set()}
        decode, respond = fossil.serve.app.decode_upload, fossil.serve.app.segment_response
        segment = service.segment

        def recorded(stage: str, fn: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                self.threads[stage].add(threading.current_thread().name)
                return fn(*args, **kwargs)

            return call

        monkeypatch.setattr(fossil.serve.app, "decode_upload", recorded("decode", decode))
        monkeypatch.setattr(fossil.serve.app, "segment_response", recorded("respond", respond))
        monkeypatch.setattr(service, "segment", recorded("segment", segment))


# ---- memory: one request's work at a time, images downscaled first ---------------------------


def test_decoding_segmenting_and_the_response_all_run_on_the_one_model_thread(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "segment", canned_segment(service))
    stages = Stages(monkeypatch, service)
    response = post(client_of(service))
    assert response.status_code == 200, response.text
    # one thread runs every stage of every request: at most one decoded image, one
    # segmentation and one response are held at a time, however many requests arrive
    threads = set().union(*stages.threads.values())
    assert all(stages.threads.values()) and len(threads) == 1, stages.threads
    assert threads.pop().startswith("fossil-model")


def test_concurrent_requests_decode_one_at_a_time(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = Blocking(service)
    monkeypatch.setattr(service, "segment", blocking)
    inside, most = [0], [0]
    lock = threading.Lock()
    decode = fossil.serve.app.decode_upload

    def counted(*args: Any, **kwargs: Any) -> np.ndarray:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            return decode(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(fossil.serve.app, "decode_upload", counted)
    app = create_app(service, ServeSettings(time_limit=30))

    def send() -> int:
        return post(TestClient(app, base_url=LOCAL)).status_code

    with queued_behind_first(send, blocking) as answers:
        assert blocking.calls == 1 and inside[0] == 0  # the others' uploads wait undecoded
    assert answers == [200, 200, 200] and most[0] == 1


def test_a_large_upload_is_downscaled_before_it_is_segmented(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, ...]] = []

    def segment(image: np.ndarray, names: list[str], _: Any) -> Segmentation:
        seen.append(image.shape)
        return canned(service, names, image.shape[:2])

    monkeypatch.setattr(service, "segment", segment)
    response = post(client_of(service, max_side=512), image=gray_png(3000, 600))
    assert response.status_code == 200, response.text
    assert seen == [(102, 512, 3)]  # the long side at the limit, the aspect ratio kept
    body = response.json()
    assert body["size"] == [512, 102]
    assert body["original_size"] == [3000, 600]
    small = post(client_of(service, max_side=512), image=gray_png(300, 60))
    assert small.json()["size"] == [300, 60] and seen[-1] == (60, 300, 3)  # never enlarged


def test_the_server_downscales_uploads_by_default(service: Service) -> None:
    assert ServeSettings().max_side == 2048  # the protocol's long side (design §9)
    with pytest.raises(ValueError, match=r"max_side \(0\) must be >= 1"):
        ServeSettings(max_side=0)


# ---- the time limit covers every stage --------------------------------------------------------


@pytest.mark.parametrize("stage", ["decode_upload", "segment_response"])
def test_the_time_limit_covers_decoding_and_building_the_response(
    service: Service, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    original = getattr(fossil.serve.app, stage)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(fossil.serve.app, stage, slow)
    monkeypatch.setattr(service, "segment", canned_segment(service))
    response = post(client_of(service, time_limit=0.5))
    assert response.status_code == 503, response.text
    assert "time limit of 0.5 s" in response.json()["detail"]


def test_a_request_past_its_limit_stops_before_its_response_is_built(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = Blocking(service)
    monkeypatch.setattr(service, "segment", blocking)
    built: list[int] = []
    respond = fossil.serve.app.segment_response

    def recorded(*args: Any, **kwargs: Any) -> dict[str, Any]:
        built.append(1)
        return respond(*args, **kwargs)

    monkeypatch.setattr(fossil.serve.app, "segment_response", recorded)
    client = client_of(service, time_limit=0.5)
    assert post(client).status_code == 503
    blocking.release.set()  # the model call ends after the answer was given up
    deadline = time.monotonic() + 10
    while blocking.inside and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert built == []  # nobody waits for it: no response (PNGs, overlay) is built
    assert post(client).status_code == 200 and built == [1]


# ---- concepts per request ---------------------------------------------------------------------


def test_too_many_concepts_get_400_naming_the_field_and_the_limit(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any) -> Any:
        raise AssertionError("the model ran for a refused request")

    monkeypatch.setattr(service, "segment", never)
    monkeypatch.setattr(service, "query", never)
    client = client_of(service, max_concepts=3)
    message = "concepts: 4 given, at most 3 per request (the server's --max-concepts)"
    response = post(client, "a, b, c, d")
    assert response.status_code == 400 and response.json()["detail"] == message
    response = client.get("/query", params={"concepts": "a, b, c, d"})
    assert response.status_code == 400 and response.json()["detail"] == message
    many = ", ".join(f"concept {i}" for i in range(5000))
    response = post(client_of(service), many)  # the default limit
    assert response.status_code == 400
    assert "concepts: 5000 given, at most 200 per request" in response.json()["detail"]


def test_the_concept_limit_is_checked(service: Service) -> None:
    with pytest.raises(ValueError, match=r"max_concepts \(0\) must be >= 1"):
        ServeSettings(max_concepts=0)


# ---- Host names (DNS rebinding) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST."]
)
def test_a_local_server_answers_local_host_names(service: Service, host: str) -> None:
    client = TestClient(create_app(service, ServeSettings()))
    assert client.get("/info", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""]
)
def test_a_local_server_refuses_other_host_names(service: Service, host: str) -> None:
    client = TestClient(create_app(service, ServeSettings()))
    for path in ("/", "/info", "/static/app.js"):
        response = client.get(path, headers={"host": host})
        assert response.status_code == 400, (path, host)
        detail = response.json()["detail"]
        assert "Host" in detail and "--allowed-hosts" in detail


def test_allowed_hosts_name_the_names_a_public_server_answers(service: Service) -> None:
    client = TestClient(create_app(service, ServeSettings(allowed_hosts=("fossil.example",))))
    assert client.get("/info", headers={"host": "fossil.example:8000"}).status_code == 200
    assert client.get("/info", headers={"host": "Fossil.Example"}).status_code == 200
    assert client.get("/info", headers={"host": "localhost"}).status_code == 400
    any_host = TestClient(create_app(service, ServeSettings(allowed_hosts=("*",))))
    assert any_host.get("/info", headers={"host": "whatever.example"}).status_code == 200


@pytest.mark.parametrize("name", ["", "http://x.example", "a b", "x.example/path"])
def test_bad_allowed_host_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        ServeSettings(allowed_hosts=(name,))


# ---- local paths --------------------------------------------------------------------------------


def test_info_shows_local_paths_only_behind_the_api_key(service: Service, store: Path) -> None:
    root = str(store.resolve())
    open_body = client_of(service).get("/info").json()
    assert root not in json.dumps(open_body) and str(store) not in json.dumps(open_body)
    assert open_body["store"] is None and open_body["vector_store"] is None
    assert open_body["references"] == 6
    assert [c["source"] for c in open_body["corpora"]] == ["captions.txt"]  # its name only
    keyed = client_of(service, api_key="s3cret")
    body = keyed.get("/info", headers={"X-API-Key": "s3cret"}).json()
    assert body["store"] == root and body["corpora"][0]["source"].startswith("/")


def test_a_missing_thumbnail_is_a_404_without_its_path(
    service: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gone = tmp_path / "secret-folder" / "t.webp"
    catalog = service.collection.catalog
    monkeypatch.setattr(catalog, "lookup", lambda ids: {i: {"thumbnail": str(gone)} for i in ids})
    response = client_of(service).get("/references/abc/thumbnail")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "abc" in detail and "missing" in detail
    assert "secret-folder" not in response.text and str(tmp_path) not in response.text


def test_error_bodies_never_carry_the_store_path(
    service: Service, monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    def failing(*args: Any) -> Any:
        raise ValueError(f"cannot read {store.resolve()}/catalog.sqlite: disk I/O error")

    monkeypatch.setattr(service, "query", failing)
    response = client_of(service).get("/query", params={"concepts": "dog"})
    assert response.status_code == 400
    assert str(store) not in response.text and "disk I/O error" in response.text


def test_engines_per_retrieval_setting_are_bounded_and_share_one_cache(service: Service) -> None:
    from dataclasses import replace

    from fossil.pipeline.session import MAX_ENGINES

    session, base = service.session, service.config.retrieval
    engines = [session.engine(replace(base, N=n, K=1)) for n in range(1, 3 * MAX_ENGINES)]
    assert len(session._engines) == MAX_ENGINES  # the least recently used are dropped
    assert len({id(e._memory) for e in engines}) == 1  # one memory cache, one byte bound
    assert session.engine(replace(base, N=3 * MAX_ENGINES - 1, K=1)) is engines[-1]
