"""A ``fossil serve`` killed in the middle of an ingest job (SIGKILL after a batch's vector
upsert, before its catalog commit) resumes exactly: the next server's job ends with the
same point ids as a plain ``fossil ingest`` (issue 29)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fossil.cli import main
from fossil.client import ServerClient, ServerError
from fossil.ingest.worker import KILL_ENV
from fossil.pipeline.ingest_config import StoreAddress
from tests.conftest import build_tiny_store
from tests.serve.test_browser import _free_port
from tests.serve.test_live import MORE

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="POSIX signals")


def serve(store: Path, port: int, log: Path, kill: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop(KILL_ENV, None)
    if kill:
        env[KILL_ENV] = kill
    argv = [sys.executable, "-m", "fossil.cli", "serve", "--store", str(store), "--port",
            str(port), "--no-crf"]  # fmt: skip
    return subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def wait_up(client: ServerClient, server: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + 300
    while time.monotonic() < end:
        assert server.poll() is None, "the server ended while starting"
        try:
            client.collection()
            return
        except ServerError:
            time.sleep(0.5)
    raise AssertionError("the server did not start")


def point_ids(store: Path) -> set[str]:
    opened = StoreAddress(store).open()
    try:
        return {p.id for p in opened.refs.iter_points()}
    finally:
        opened.close()


def test_a_server_killed_in_a_job_resumes_exactly(tmp_path: Path) -> None:
    store = build_tiny_store(tmp_path)
    corpus = tmp_path / "more.txt"
    corpus.write_text("\n".join(MORE) + "\n")
    port, log = _free_port(), tmp_path / "serve.log"
    client = ServerClient(f"http://127.0.0.1:{port}", timeout=120)

    doomed = serve(store, port, log, "after-upsert:2")  # the second batch: vectors only
    try:
        wait_up(client, doomed)
        client.start_ingest(corpus)
        assert doomed.wait(300) == -9, log.read_text()[-2000:]
    finally:
        if doomed.poll() is None:
            doomed.kill()

    server = serve(store, port, log, None)
    try:
        wait_up(client, server)
        job = client.start_ingest(corpus)["job"]
        end = time.monotonic() + 300
        while (state := client.job(job))["state"] in ("queued", "running"):
            assert time.monotonic() < end, "the resumed job did not end"
            time.sleep(0.5)
        assert state["state"] == "done", state["errors"]
        assert 0 < state["captions_done"] < len(MORE)  # only what the killed server left
    finally:
        server.terminate()
        server.wait(60)

    (tmp_path / "plain").mkdir()
    plain = build_tiny_store(tmp_path / "plain")
    argv = ["ingest", str(corpus), "--store", str(plain), "--models", "tiny", "--no-progress"]
    assert main(argv) == 0
    assert point_ids(store) == point_ids(plain)
