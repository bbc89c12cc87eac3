import os

import numpy as np
import pytest

from fossil.config import CRFConfig
from fossil.segment.crf import cpu_workers, crf_labels, crf_mask, crf_masks


def _image(rng, size=96):
    """Grey image with a red square at [24, 72)²."""
    image = np.full((size, size, 3), 120, np.int64)
    image[24:72, 24:72] = (200, 40, 40)
    image += rng.integers(-6, 7, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _square(y0, y1, x0, x1, size=96):
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_clean_mask_is_kept():
    image = _image(np.random.default_rng(0))
    truth = _square(24, 72, 24, 72)
    out = crf_mask(image, truth.astype(np.float32), CRFConfig())
    assert out is not None and (out == truth).mean() > 0.99


def test_read_only_image_as_decoded_by_pillow_is_accepted():
    image = _image(np.random.default_rng(0))
    image.setflags(write=False)  # np.asarray(PIL image) gives read-only arrays
    truth = _square(24, 72, 24, 72)
    out = crf_mask(image, truth.astype(np.float32), CRFConfig())
    assert out is not None and (out == truth).mean() > 0.99


def test_crf_snaps_a_coarse_mask_to_the_image_edges():
    image = _image(np.random.default_rng(1))
    coarse = _square(20, 76, 20, 76)  # a patch-grid mask a little too large
    out = crf_mask(image, coarse.astype(np.float32), CRFConfig())
    truth = _square(24, 72, 24, 72)
    assert out is not None
    assert np.count_nonzero(out & truth) / np.count_nonzero(out | truth) > 0.95


def test_destroyed_mask_is_dropped():
    image = np.full((96, 96, 3), 120, np.uint8)  # nothing in the image supports the mask
    stripes = np.zeros((96, 96), bool)
    stripes[:, ::4] = True  # thin stripes: the CRF smooths them away
    assert crf_mask(image, stripes.astype(np.float32), CRFConfig()) is None
    kept = crf_mask(image, stripes.astype(np.float32), CRFConfig(min_iou=0.0))
    assert kept is not None and np.count_nonzero(kept) < np.count_nonzero(stripes) / 2


def test_multilabel_crf_keeps_exclusive_clean_masks():
    image = _image(np.random.default_rng(2))
    square = _square(24, 72, 24, 72)
    rest = ~square
    rest[:, :8] = False  # uncovered band on the left
    out = crf_labels(image, np.stack([square, rest]), CRFConfig())
    assert out.shape == (2, 96, 96) and out.sum(0).max() <= 1
    assert (out[0] == square).mean() > 0.99


def test_image_must_be_uint8_rgb_of_the_mask_size():
    mask = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match="uint8"):
        crf_mask(np.zeros((8, 8, 3), np.float32), mask, CRFConfig())
    with pytest.raises(ValueError, match="masks are"):
        crf_mask(np.zeros((9, 8, 3), np.uint8), mask, CRFConfig())


def test_crf_masks_in_worker_processes_equal_the_masks_run_here():
    image = _image(np.random.default_rng(4))
    stripes = np.zeros((96, 96), np.float32)
    stripes[:, ::4] = 1.0  # dropped by the CRF: None must come back in its place
    coarse = _square(16, 80, 16, 80).astype(np.float32) * 0.8
    softs = [_square(24, 72, 24, 72).astype(np.float32), stripes, coarse]
    here = crf_masks(image, softs, CRFConfig(workers=1))
    pooled = crf_masks(image, softs, CRFConfig(workers=2))
    assert here[1] is None and pooled[1] is None
    for a, b in zip((here[0], here[2]), (pooled[0], pooled[2]), strict=True):
        assert a is not None and b is not None and np.array_equal(a, b)
    assert crf_masks(image, [], CRFConfig(workers=2)) == []


def test_crf_workers_are_counted_and_checked():
    assert cpu_workers(0) >= 1 and cpu_workers(3) == 3
    with pytest.raises(ValueError, match="workers"):
        CRFConfig(workers=-1)


def test_a_dead_crf_worker_falls_back_to_this_process(caplog):
    import fossil.segment.crf as crf

    image = _image(np.random.default_rng(6))
    softs = [_square(24, 72, 24, 72).astype(np.float32)] * 2
    config = CRFConfig(workers=2)
    expected = crf_masks(image, softs, CRFConfig(workers=1))
    crf_masks(image, softs, config)  # starts the pool
    pool = crf._POOLS[2]
    for process in list(pool._processes.values()):  # type: ignore[attr-defined]
        process.kill()
        process.join()
    with caplog.at_level("WARNING", logger="fossil.segment.crf"):
        out = crf_masks(image, softs, config)
    assert all(np.array_equal(a, b) for a, b in zip(out, expected, strict=True))
    assert "died" in caplog.text and 2 not in crf._POOLS
    assert crf_masks(image, softs, config)[0] is not None  # a new pool starts


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone(pids: list[int], seconds: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while any(map(_alive, pids)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_shutdown_pools_ends_the_crf_worker_processes():
    import fossil.segment.crf as crf

    image = _image(np.random.default_rng(7))
    softs = [_square(24, 72, 24, 72).astype(np.float32)] * 2
    crf_masks(image, softs, CRFConfig(workers=2))
    pids = [p.pid for p in crf._POOLS[2]._processes.values()]  # type: ignore[attr-defined]
    assert len(pids) == 2 and all(map(_alive, pids))
    crf.shutdown_pools()
    assert not crf._POOLS and _gone(pids, 5.0)
    assert crf_masks(image, softs, CRFConfig(workers=2))[0] is not None  # a new pool starts
    crf.shutdown_pools()


CHILD = """
import os, signal
from multiprocessing import resource_tracker
import os

import numpy as np
from fossil.config import CRFConfig
from fossil.segment import crf

if __name__ == "__main__":
    softs = [np.ones((32, 32), np.float32)] * 2
    crf.crf_masks(np.zeros((32, 32, 3), np.uint8), softs, CRFConfig(workers=2))
    pids = [p.pid for p in crf._POOLS[2]._processes.values()]
    pids.append(resource_tracker._resource_tracker._pid)
    print(*pids, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind runs
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_crf_workers_and_the_resource_tracker_die_with_their_parent(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    out = tmp_path / "out.txt"  # a file, not a pipe: orphans holding it would block a read
    with out.open("w") as output:
        done = subprocess.run([sys.executable, str(script)], stdout=output, env=env, timeout=120)
    assert done.returncode == -9
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) == 3, out.read_text()
    try:
        assert _gone(pids), f"left behind: {[p for p in pids if _alive(p)]}"
    finally:
        for pid in filter(_alive, pids):
            os.kill(pid, 9)
