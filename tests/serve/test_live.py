"""The live collection (issue 29): ingest inside ``fossil serve`` while it answers ``/query``
and ``fossil eval --server``; the store after the job equals a plain ``fossil ingest``.

The job's generator is paced by the test (one batch per permit), so "while it runs" is
certain: the reads happen while the job waits between two batches."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from fossil.cli import build_parser, main
from fossil.client import ServerClient
from fossil.commands.serve import build_app
from fossil.config import CollectionSettings
from fossil.db.catalog import SqlCatalog
from fossil.db.open import store_catalog_url
from fossil.pipeline.ingest import model_loaders
from fossil.pipeline.ingest_config import IngestOptions, StoreAddress
from fossil.serve.app import create_app
from fossil.serve.jobs import IngestJobs
from fossil.serve.wire import Prototypes, decode, encode
from tests.conftest import build_tiny_store, models_loaded_once
from tests.eval.fakes import write_dataset
from tests.serve.test_browser import _free_port

LOCAL = "http://127.0.0.1"
MORE = [f"A {size} {noun} next to a {thing}" for size in ("small", "big", "old")
        for noun in ("dog", "horse") for thing in ("tree", "house")]  # fmt: skip
BATCH = 3  # captions per batch: 12 captions, 4 batches
SIDES = CollectionSettings(short_side=48, crop=48, stride=32)


class Paced:
    """A generator that waits for a permit before each batch."""

    def __init__(self, inner: Any, permits: threading.Semaphore) -> None:
        self.inner, self.permits = inner, permits

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        assert self.permits.acquire(timeout=300), "the test never let the batch run"
        return self.inner.generate(*args, **kwargs)


@dataclass
class PacedModels:
    text: Any
    nouns: Any
    dense: Any
    generator: Any


def local(served: dict[str, Any]) -> TestClient:
    """A client of the served app that leaves its lifespan alone (the server's)."""
    return TestClient(served["app"], base_url=LOCAL)


def wait_for(check: Any, what: str, timeout: float = 300.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def loaded() -> Iterator[None]:
    with models_loaded_once():
        yield


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, loaded: None) -> Iterator[dict[str, Any]]:
    """A uvicorn server (in a thread) over a tiny store, with a paced job manager."""
    tmp = tmp_path_factory.mktemp("live")
    store = build_tiny_store(tmp)
    catalog = SqlCatalog(store_catalog_url(store))
    catalog.set_settings(SIDES)  # small images: the client's eval stays quick
    catalog.close()
    args = build_parser().parse_args(["serve", "--store", str(store)])
    args.no_crf = True
    base, collection = build_app(args)
    base.state.jobs.close()  # the default manager: replaced by the paced one
    permits = threading.Semaphore(0)

    def load() -> PacedModels:
        models = model_loaders("tiny", (None,), 1)[0]()
        generator = Paced(models.generator, permits)
        return PacedModels(models.text, models.nouns, models.dense, generator)

    jobs = IngestJobs(collection, load, threading.RLock(), options=IngestOptions(batch_size=BATCH))
    app = create_app(base.state.service, base.state.settings, jobs)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start", 60)
    try:
        yield {"url": f"{LOCAL}:{port}", "permits": permits, "jobs": jobs, "tmp": tmp,
               "collection": collection, "app": app}  # fmt: skip
    finally:
        permits.release(100)
        server.should_exit = True
        thread.join(60)
        collection.close()


def test_ingest_in_the_server_while_query_and_eval_answer(served: dict[str, Any]) -> None:
    url, permits, tmp = served["url"], served["permits"], served["tmp"]
    corpus = tmp / "more.txt"
    corpus.write_text("\n".join(MORE) + "\n")
    client = ServerClient(url)
    start = client.collection()
    started = client.start_ingest(corpus)
    job = started["job"]
    assert started["state"] in ("queued", "running") and started["captions_given"] == len(MORE)

    # a second job on the same corpus is refused while the first runs
    with pytest.raises(Exception, match="409 corpus 'more' is already being ingested"):
        client.start_ingest(corpus)

    permits.release()  # one batch
    first = wait_for(
        lambda: (s := client.job(job))["references_written"] > 0 and s, "the first batch"
    )
    assert first["state"] == "running" and first["captions_done"] == BATCH
    assert first["revision"] > start["revision"] and first["latest"]

    # reads are answered between batches, each with the revision it saw
    answer = local(served).get("/query", params={"concepts": "dog, tree"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["revision"] == first["revision"]
    found = client.prototypes(["dog", "tree"], k=2)
    assert found.revision == first["revision"]
    assert found.collection_size == start["references"] + first["references_written"]
    assert [len(p) for p in found.prototypes] == [2, 2]

    # fossil eval --server on a small fake dataset, with the client's own tiny models
    data, out = tmp / "data", tmp / "eval"
    write_dataset(data, "cityscapes")
    argv = ["eval", "cityscapes", "--data", str(data), "--server", url, "--out", str(out),
            "--no-opencut", "--no-cache", "--no-progress", "--k", "2", "--limit", "2"]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["preset"] == "cityscapes" and config["eval"]["short_side"] == 48
    assert config["server"] == url and config["collection_revision"] == first["revision"]
    assert config["collection_size"] == found.collection_size
    assert config["prototypes_taken_at"].endswith("+00:00")
    assert client.job(job)["state"] == "running"  # still waiting for its second batch

    permits.release(100)
    done = wait_for(lambda: (s := client.job(job))["state"] in ("done", "failed") and s, "end")
    assert done["state"] == "done", done["errors"]
    assert done["captions_done"] == len(MORE) and done["errors"] == []

    # the store equals a plain `fossil ingest` of the same corpora: the same point ids
    (tmp / "plain").mkdir()
    plain = build_tiny_store(tmp / "plain")
    assert main(["ingest", str(corpus), "--store", str(plain), "--models", "tiny",
                 "--no-progress"]) == 0  # fmt: skip
    opened = StoreAddress(plain).open()
    try:
        expected = {p.id for p in opened.refs.iter_points()}
    finally:
        opened.close()
    served_ids = {p.id for p in served["collection"].refs.iter_points()}
    assert served_ids == expected and len(expected) == client.collection()["references"]


def test_malformed_corpus_gets_a_400_with_the_line(served: dict[str, Any]) -> None:
    client = local(served)
    bad = b'{"caption": "a dog"}\n{"caption": 3}\n'
    answer = client.post("/ingest", files={"corpus": ("bad.jsonl", bad, "text/plain")})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("bad.jsonl line 2: 'caption' is int")
    neither = client.post("/ingest", data={})
    assert neither.status_code == 400 and "either" in neither.json()["detail"]
    missing = client.post("/ingest", data={"path": str(served["tmp"] / "nope.txt")})
    assert missing.status_code == 400 and "does not exist" in missing.json()["detail"]
    assert client.get("/ingest/nope").status_code == 404


def test_a_stopped_job_stops_after_its_batch_and_a_later_job_resumes_it(
    served: dict[str, Any],
) -> None:
    permits, tmp = served["permits"], served["tmp"]
    while permits.acquire(blocking=False):  # the job waits before each batch again
        pass
    first, second = tmp / "lake.txt", tmp / "sea.txt"
    first.write_text("A boat on a lake\nA duck on a lake\nA swan on a lake\nA frog on a lake\n")
    second.write_text("A ship on the sea\n")
    client = ServerClient(served["url"])
    running = client.start_ingest(first)["job"]
    wait_for(lambda: client.job(running)["state"] == "running", "the job to start")
    queued = client.start_ingest(second)["job"]
    assert client.job(queued)["state"] == "queued"
    assert client.stop(queued)["state"] == "stopped"  # a queued job never runs
    assert client.stop(running)["stop_requested"]
    permits.release()  # the batch under way ends, then the job stops
    stopped = wait_for(lambda: (s := client.job(running))["state"] == "stopped" and s, "stop")
    assert stopped["captions_done"] == BATCH
    counts = served["collection"].catalog.status_counts(corpora=["lake"])
    assert (counts["done"], counts["pending"]) == (BATCH, 1)

    permits.release(100)
    resumed = client.start_ingest(first)["job"]
    done = wait_for(lambda: (s := client.job(resumed))["state"] in ("done", "failed") and s, "end")
    assert done["state"] == "done" and done["captions_done"] == 1
    counts = served["collection"].catalog.status_counts(corpora=["lake"])
    assert (counts["done"], counts["pending"], counts["leased"]) == (4, 0, 0)
    assert client.job(queued)["captions_done"] == 0


def test_the_prototype_wire_form_round_trips() -> None:
    rng = np.random.default_rng(0)
    sent = Prototypes(
        concepts=("dog", "grass"),
        prototypes=(rng.standard_normal((3, 8)).astype(np.float32), np.zeros((1, 8), np.float32)),
        references=(40, 2),
        revision=7,
        collection_size=42,
        taken_at=1.5,
    )
    got = decode(encode(sent))
    assert got.concepts == sent.concepts and got.references == (40, 2)
    assert (got.revision, got.collection_size, got.taken_at) == (7, 42, 1.5)
    for a, b in zip(got.prototypes, sent.prototypes, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not an .npz"):
        decode(b"PK\x03\x04 broken")


def test_ingest_routes_need_a_key_when_the_server_answers_other_hosts(
    served: dict[str, Any],
) -> None:
    from fossil.serve.app import ServeSettings

    service = served["app"].state.service
    jobs = IngestJobs(service.collection, lambda: None, threading.RLock())  # type: ignore[arg-type, return-value]
    try:
        open_app = create_app(service, ServeSettings(allowed_hosts=("*",)), jobs)
        with TestClient(open_app, base_url="http://fossil.example") as remote:
            answer = remote.post("/ingest", data={"path": "/etc/hostname"})
        assert answer.status_code == 403 and "API key" in answer.json()["detail"]
    finally:
        jobs.close()


def test_the_ingest_and_query_commands_talk_to_the_server(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``fossil ingest CORPUS --server URL`` uploads a job and follows it to its end;
    ``fossil query … --server URL`` prints the server's answer with its revision."""
    served["permits"].release(100)
    corpus = served["tmp"] / "pond.txt"
    corpus.write_text("A heron by a pond\nA turtle in a pond\n")
    url = served["url"]
    assert main(["ingest", str(corpus), "--server", url, "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["state"] == "done" and summary["captions_done"] == 2
    assert summary["references_written"] > 0 and summary["errors"] == []
    assert served["collection"].catalog.status_counts(corpora=["pond"])["done"] == 2

    assert main(["query", "heron", "turtle", "--server", url, "--json", "--k", "1"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["revision"] == summary["revision"]
    assert [c["concept"] for c in answer["concepts"]] == ["heron", "turtle"]
    assert all(c["retrieved"] > 0 for c in answer["concepts"])
    grid = ["query", "heron", "--server", url, "--grid", str(served["tmp"] / "g.png")]
    assert main(grid) != 0  # --grid draws from a local store: refused in one line
    assert "--grid does not work with --server" in capsys.readouterr().err
