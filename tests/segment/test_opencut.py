import sys
from dataclasses import replace

import numpy as np
import pytest

from fossil.config import OPENCUT_VARIANTS, CRFConfig, OpenCutConfig
from fossil.segment import opencut
from fossil.segment.opencut import VARIANT_RULES, VariantRules, run_opencut
from tests.segment.planted import objects_grid, planted_scene

# The planted scenes model DINO ViT-B/8 keys, on which the paper set its absolute tau values
# (background parts share a direction, objects are orthogonal to everything): the tests of the
# schedule's logic run with that schedule.  The default (quantile tau space) is tested below on
# keys that all share one strong direction (as DINOv2's do) and on real DINOv2 keys
# (tests/segment/test_opencut_real.py).
ABSOLUTE = OpenCutConfig.paper_absolute()
VARIANTS = ["paper", "shrinking-graph"]


def _best_iou(masks: np.ndarray, region: np.ndarray) -> float:
    inter = (masks & region).sum(axis=(1, 2))
    union = (masks | region).sum(axis=(1, 2))
    return float((inter / union).max())


def _check_regions_recovered(masks: np.ndarray, labels: np.ndarray) -> None:
    assert masks.dtype == bool and masks.shape[1:] == labels.shape
    assert masks.sum(0).max() <= 1  # mutually exclusive
    assert masks.any(0).mean() >= 0.95
    for k in np.unique(labels):
        assert _best_iou(masks, labels == k) >= 0.9, f"region {k} not recovered"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("objects", [0, 1, 2])  # 3, 4 and 5 planted regions
def test_planted_regions_come_back_on_the_patch_grid(objects, variant):
    scene = planted_scene(np.random.default_rng(10 + objects), objects=objects)
    masks = opencut(scene.keys, config=replace(ABSOLUTE, variant=variant))
    assert len(masks) == objects + len(scene.background)
    _check_regions_recovered(masks, scene.labels)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("multi_label", [False, True])
def test_planted_regions_come_back_at_image_resolution_with_crf(multi_label, variant):
    scene = planted_scene(np.random.default_rng(3), objects=2)
    config = replace(ABSOLUTE, variant=variant, crf=CRFConfig(multi_label=multi_label))
    result = run_opencut(scene.keys, scene.image, config)
    labels = np.repeat(np.repeat(scene.labels, 8, axis=0), 8, axis=1)
    assert result.masks.shape == (5, 480, 480)
    _check_regions_recovered(result.masks, labels)


@pytest.mark.parametrize("variant", VARIANTS)
def test_crf_in_worker_processes_gives_the_same_masks(variant):
    scene = planted_scene(np.random.default_rng(5), objects=2)
    config = replace(ABSOLUTE, variant=variant)
    here = run_opencut(scene.keys, scene.image, config)
    pooled = run_opencut(scene.keys, scene.image, replace(config, crf=CRFConfig(workers=2)))
    assert np.array_equal(here.masks, pooled.masks) and here.taus == pooled.taus
    assert (here.outcomes, here.crf_dropped) == (pooled.outcomes, pooled.crf_dropped)


@pytest.mark.parametrize("variant", VARIANTS)
def test_foreground_first_background_last(variant):
    scene = planted_scene(np.random.default_rng(4), objects=2)
    config = replace(ABSOLUTE, variant=variant)
    result = run_opencut(scene.keys, config=config)
    region_of = [int(np.bincount(scene.labels[m]).argmax()) for m in result.masks]
    # objects are cut out at a low tau, where the whole background is one coherent block ...
    assert sorted(region_of[:2]) == sorted(scene.foreground)
    assert all(tau in config.tau_foreground for tau in result.taus[:2])
    # ... and the background parts only split at a high tau of the background phase
    assert sorted(region_of[2:]) == sorted(scene.background)
    assert all(tau in config.tau_background for tau in result.taus[2:])
    # without the foreground phase the 2-way cuts at 0.6 lump objects with the background
    # part they touch: no mask matches an object any more
    only_background = opencut(scene.keys, config=replace(config, tau_foreground=()))
    for k in scene.foreground:
        assert _best_iou(only_background, scene.labels == k) < 0.5


@pytest.mark.parametrize("variant", VARIANTS)
def test_coherent_remainder_is_optional(variant):
    scene = planted_scene(np.random.default_rng(5), objects=1)
    # tau 0.0 and -0.1 are left out: the planted objects have cosine exactly 0 with the
    # background, so at tau 0 their edges are noise, and on the full graph (paper variant)
    # the noisy cut's speckles would become regions of the uncovered part
    config = replace(
        ABSOLUTE, variant=variant, accept_coherent_remainder=False, tau_background=(0.6, 0.8)
    )
    masks = opencut(scene.keys, config=config)
    assert len(masks) == 3  # the last background part stays uncovered
    uncovered = ~masks.any(0)
    assert any((uncovered == (scene.labels == k)).all() for k in scene.background)


def test_accepted_masks_carry_over_between_taus():
    scene = planted_scene(np.random.default_rng(6), objects=2)
    config = replace(
        ABSOLUTE, variant="shrinking-graph", tau_foreground=(0.15, 0.15), tau_background=()
    )
    result = run_opencut(scene.keys, config=config)
    assert len(result.masks) == 2 and result.eigensolves == 2  # the second 0.15 finds nothing
    assert result.outcomes == {"accepted": 2}  # mu and rho can never fire on a shrunk graph


def test_paper_variant_refines_a_later_tau_against_accepted_masks():
    """Every tau cuts the full graph and each cut keeps its whole side: at the first 0.15 one
    cut holds both objects (two components, both accepted); the second 0.15 finds them again
    and the refinement merges them into the accepted masks (IoU > mu)."""
    scene = planted_scene(np.random.default_rng(6), objects=2)
    config = replace(ABSOLUTE, tau_foreground=(0.15, 0.15), tau_background=())
    assert config.variant == "paper"  # the default
    result = run_opencut(scene.keys, config=config)
    assert len(result.masks) == 2 and result.raw_masks == 2 and result.eigensolves == 2
    assert result.outcomes == {"accepted": 2, "merged": 2}
    for k in scene.foreground:
        assert _best_iou(result.masks, scene.labels == k) >= 0.9


def test_every_variant_names_its_three_rules():
    assert set(VARIANT_RULES) == set(OPENCUT_VARIANTS)
    assert VARIANT_RULES["paper"] == VariantRules(True, True, True)
    with pytest.raises(ValueError, match="refine_at_end needs full_graph"):
        VariantRules(full_graph=False, whole_side=True, refine_at_end=True)


def test_a_coherent_remainder_counts_from_coherent_min_cosine_in_absolute_space():
    """At 0.15 the two objects come out, then the background is all linked: its remainder is
    kept as a region only when 0.15 reaches ``coherent_min_cosine``."""
    scene = planted_scene(np.random.default_rng(6), objects=2)
    config = replace(ABSOLUTE, tau_foreground=(0.15,), tau_background=())
    strict = run_opencut(scene.keys, config=config)  # coherent_min_cosine 0.5 > 0.15
    assert len(strict.masks) == 2
    assert not strict.masks.any(0)[np.isin(scene.labels, scene.background)].any()
    lenient = run_opencut(scene.keys, config=replace(config, coherent_min_cosine=0.1))
    assert len(lenient.masks) > 2
    assert lenient.masks.any(0)[np.isin(scene.labels, scene.background)].all()


def test_coherent_min_cosine_does_not_apply_to_quantile_taus():
    scene = planted_scene(np.random.default_rng(6), objects=2)
    base = OpenCutConfig(tau_foreground=(0.5,), tau_background=(), t=10)
    kept = run_opencut(scene.keys, config=base)
    dropped = run_opencut(scene.keys, config=replace(base, accept_coherent_remainder=False))
    assert len(kept.masks) > len(dropped.masks)  # a remainder was kept at this tau
    strict = run_opencut(scene.keys, config=replace(base, coherent_min_cosine=1.0))
    np.testing.assert_array_equal(strict.masks, kept.masks)


def test_paper_variant_discards_a_mask_mostly_covered():
    """A background cut that mostly re-covers accepted masks is discarded (rho), not merged:
    at 0.6 the full graph splits into bands; one band plus an object it holds overlaps the
    band accepted before by more than rho without an IoU above mu."""
    scene = planted_scene(np.random.default_rng(4), objects=2)
    result = run_opencut(scene.keys, config=ABSOLUTE)
    assert result.outcomes.get("discarded", 0) + result.outcomes.get("merged", 0) > 0
    shrinking = run_opencut(scene.keys, config=replace(ABSOLUTE, variant="shrinking-graph"))
    assert set(shrinking.outcomes) == {"accepted"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_default_taus_cut_keys_that_all_look_alike(variant):
    """Keys sharing one strong direction (DINOv2's last-layer keys of one photo have cosines
    0.75-0.96): every absolute tau of the paper's foreground phase links every pair and
    OpenCut returns one mask; quantile taus (the default) still cut the planted objects out."""
    scene = planted_scene(np.random.default_rng(11), objects=2, background_cos=0.5)
    shared = np.random.default_rng(12).normal(size=scene.keys.shape[-1]).astype(np.float32)
    keys = scene.keys + 3.0 * shared / np.linalg.norm(shared)
    flat = keys.reshape(-1, keys.shape[-1]) / np.linalg.norm(keys, axis=-1).reshape(-1, 1)
    assert (flat @ flat.T).min() > 0.8
    absolute = opencut(keys, config=replace(ABSOLUTE, variant=variant))
    assert len(absolute) == 1 and absolute[0].all()
    config = OpenCutConfig(variant=variant)
    assert config.tau_space == "quantile"  # the default
    masks = opencut(keys, config=config)
    assert masks.sum(0).max() <= 1
    for k in scene.foreground:
        assert _best_iou(masks, scene.labels == k) >= 0.9, f"object {k} not recovered"


def test_survivors_only_skips_the_crf_of_masks_the_refinement_drops(monkeypatch):
    """``CRFConfig.survivors_only``: the refinement runs first on the raw masks; a raw mask
    none of whose components would be accepted as a new region gets no CRF and is dropped."""
    scene = planted_scene(np.random.default_rng(3), h=30, w=30, objects=2)
    config = OpenCutConfig(crf=CRFConfig(workers=1))
    calls: list[int] = []
    module = sys.modules[run_opencut.__module__]
    crf_masks = module.crf_masks

    def counting(image, soft_masks, crf_config):
        calls.append(len(soft_masks))
        return crf_masks(image, soft_masks, crf_config)

    monkeypatch.setattr(module, "crf_masks", counting)
    full = run_opencut(scene.keys, scene.image, config)
    full_calls = sum(calls)
    calls.clear()
    survivors = replace(config, crf=CRFConfig(workers=1, survivors_only=True))
    cheap = run_opencut(scene.keys, scene.image, survivors)
    assert full_calls == full.raw_masks and full.crf_skipped == 0
    assert cheap.crf_skipped > 0 and sum(calls) == cheap.raw_masks - cheap.crf_skipped
    assert cheap.masks.sum(0).max() <= 1
    for mask in full.masks:  # the regions the full path keeps come back
        assert _best_iou(cheap.masks, mask) >= 0.9


@pytest.mark.parametrize("side", [60, 37])  # DINO ViT-B/8 at 480², DINOv2 /14 at 518²
@pytest.mark.parametrize("mode", ["grid", "image", "image-without-crf"])
def test_default_does_not_shatter_a_background_into_fragments(side, mode):
    """The default on the key grid: the background's cuts at the quantile taus are speckle.
    With eta scaled to the grid (a quarter patch at 60²) every fragment became a region
    (~1,000 masks for 4 objects, 429 here); now the objects come back and little else."""
    scene = objects_grid(np.random.default_rng(1), side)
    image = None if mode == "grid" else scene.image
    config = OpenCutConfig(crf=CRFConfig(enabled=mode != "image-without-crf"))
    masks = opencut(scene.keys, image, config)
    assert 4 <= len(masks) <= 12
    labels = scene.labels if image is None else np.kron(scene.labels, np.ones((4, 4), int))
    assert masks.shape[1:] == labels.shape and masks.sum(0).max() <= 1
    for k in scene.foreground:
        assert _best_iou(masks, labels == k) >= 0.85, f"object {k} not recovered"


def test_without_crf_masks_are_the_upsampled_cut():
    scene = planted_scene(np.random.default_rng(7), objects=1)
    config = replace(ABSOLUTE, crf=CRFConfig(enabled=False))
    masks = opencut(scene.keys, scene.image, config)
    labels = np.repeat(np.repeat(scene.labels, 8, axis=0), 8, axis=1)
    _check_regions_recovered(masks, labels)


def test_bad_inputs_are_rejected():
    keys = np.zeros((4, 4, 8), np.float32)
    with pytest.raises(ValueError, match=r"\(h, w, dim\)"):
        opencut(keys[0])
    with pytest.raises(ValueError, match="NaN"):
        opencut(np.full((4, 4, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="uint8"):
        opencut(keys, np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        opencut(keys, np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="solver"):
        OpenCutConfig(solver="lobpcg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variant"):
        OpenCutConfig(variant="recursive")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tau_space"):
        OpenCutConfig(tau_space="relative")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="speckle_iou"):
        OpenCutConfig(speckle_iou=1.5)
