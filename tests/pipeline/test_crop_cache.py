from dataclasses import dataclass

import numpy as np
import pytest

from fossil.config import OpenCutConfig
from fossil.pipeline.crop_cache import CropCache, array_sha1, config_fingerprint


def test_put_get_round_trip_and_keys(tmp_path):
    cache = CropCache(tmp_path / "cache")
    features = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    masks = np.eye(3, dtype=bool)
    assert cache.get("abc", (0, 448, 0, 448), "f1") is None
    cache.put("abc", (0, 448, 0, 448), "f1", {"features": features, "masks": masks})
    got = cache.get("abc", (0, 448, 0, 448), "f1")
    assert got is not None and set(got) == {"features", "masks"}
    np.testing.assert_array_equal(got["features"], features)
    assert got["masks"].dtype == bool
    # another box, fingerprint or image is another entry
    assert cache.get("abc", (0, 448, 149, 597), "f1") is None
    assert cache.get("abc", (0, 448, 0, 448), "f2") is None
    assert cache.get("abd", (0, 448, 0, 448), "f1") is None
    assert (cache.hits, cache.misses) == (1, 4)
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # no temporary files left behind


def test_get_or_compute_computes_once(tmp_path):
    cache = CropCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.ones(3)}

    crop = np.zeros((448, 448, 3), np.uint8)
    sha1, box = CropCache.crop_key(crop)
    assert box == (0, 448, 0, 448)
    for _ in range(3):
        np.testing.assert_array_equal(cache.get_or_compute(sha1, box, "f", compute)["x"], 1.0)
    assert len(calls) == 1


def test_crop_key_box_is_y1_y2_x1_x2():
    crop = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)  # h = 3, w = 5
    assert CropCache.crop_key(crop) == (array_sha1(crop), (0, 3, 0, 5))


def test_unreadable_entry_is_a_miss(tmp_path):
    cache = CropCache(tmp_path)
    cache.put("img", (0, 1, 0, 1), "f", {"x": np.ones(2)})
    cache.path("img", (0, 1, 0, 1), "f").write_bytes(b"not a zip")
    assert cache.get("img", (0, 1, 0, 1), "f") is None
    with pytest.raises(ValueError, match="must not be empty"):
        cache.put("img", (0, 1, 0, 1), "f", {})


def test_hashes_and_fingerprints():
    a = np.zeros((2, 3), np.uint8)
    assert array_sha1(a) == array_sha1(a.copy())
    assert array_sha1(a) != array_sha1(a.reshape(3, 2))  # same bytes, other shape
    assert array_sha1(a) != array_sha1(a.astype(np.int8))
    assert config_fingerprint({"a": 1, "b": [1, 2]}) == config_fingerprint({"b": [1, 2], "a": 1})
    assert config_fingerprint(OpenCutConfig()) == config_fingerprint(OpenCutConfig())
    assert config_fingerprint(OpenCutConfig()) != config_fingerprint(OpenCutConfig(t=2))

    @dataclass
    class Other:
        t: int = 3

    assert config_fingerprint(Other()) == config_fingerprint({"t": 3})
