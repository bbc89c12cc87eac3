"""``kill <fossil serve>`` (SIGTERM) ends the server and every process it started: the CRF
worker pool and multiprocessing's resource tracker (issue 25)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.segment.test_crf import _alive, _gone
from tests.serve.conftest import park, png
from tests.serve.test_browser import _free_port

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def segment(url: str) -> dict:
    """POST /segment of a picture, multipart by hand (urllib only)."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="concepts"\r\n\r\n'.encode())
    body.write(b"dog, car, tree\r\n")
    body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=image; ".encode())
    body.write(b'filename="park.png"\r\nContent-Type: image/png\r\n\r\n')
    body.write(png(park(100, 100)) + f"\r\n--{boundary}--\r\n".encode())
    request = urllib.request.Request(
        f"{url}/segment",
        data=body.getvalue(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def test_sigterm_ends_the_server_its_crf_workers_and_the_resource_tracker(
    store: Path, tmp_path: Path
) -> None:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("FOSSIL_API_KEY", None)
    argv = [sys.executable, "-m", "fossil.cli", "serve", "--store", str(store)]
    argv += ["--models", "tiny", "--crf-workers", "2", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:  # a file: a leftover child holding a pipe would hang us
        server = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    started: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert segment(url)["regions"]  # OpenCut ran, with its CRFs in the pool
        started = children(server.pid)
        assert len(started) >= 3, f"2 CRF workers and the resource tracker: {started}"
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        assert _gone(started), f"left behind: {[p for p in started if _alive(p)]}"
        assert server.returncode == 128 + signal.SIGTERM, log.read_text()  # not killed: exited
        assert "Finished server process" in log.read_text()  # a graceful shutdown
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pid in filter(_alive, started):
            os.kill(pid, signal.SIGKILL)
