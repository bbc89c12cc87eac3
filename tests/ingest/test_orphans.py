"""``--workers`` leaves no orphans: workers exit when their parent is SIGKILLed, and the
thumbnails of uncommitted work never land among the store's (issue 16, defect 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fossil.ingest.thumbnails import staging_root, sweep_staging, thumbnail_path

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.ingest.orphan_parent", str(tmp_path)], cwd=ROOT
    )
    try:
        ready = lambda: len(list(tmp_path.glob("*.ready"))) == 2  # noqa: E731
        assert wait_for(ready, 60), "workers never started"
        pids = [int(p) for p in (tmp_path / "workers").read_text().split()]
        assert all(alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_for(lambda: not any(alive(pid) for pid in pids), 10), "orphaned workers"
    finally:
        parent.kill()
        for pid in (
            [int(p) for p in (tmp_path / "workers").read_text().split()]
            if (tmp_path / "workers").exists()
            else []
        ):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_staged_thumbnails_are_published_or_swept(tmp_path: Path) -> None:
    committed, lost = "0a" + "1" * 34, "0b" + "2" * 34
    for point in (committed, lost):
        staged = staging_root(tmp_path) / thumbnail_path(point)
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(b"RIFF")
    assert sweep_staging(tmp_path, lambda ids: [i for i in ids if i == committed]) == (1, 1)
    assert (tmp_path / thumbnail_path(committed)).is_file()
    assert not (tmp_path / thumbnail_path(lost)).exists()
    assert not list(staging_root(tmp_path).rglob("*.webp"))
    assert sweep_staging(tmp_path, lambda ids: ids) == (0, 0)
