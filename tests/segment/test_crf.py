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
