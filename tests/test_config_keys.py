"""Config fields reach the code they configure (issue 17, item 3): the prototype cache key and
the generation fingerprint are derived from the dataclasses, so a field added to them is keyed
unless it is named in an exclusion list; the encoders' input sides come from EvalConfig."""

from __future__ import annotations

from dataclasses import fields, make_dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fossil.config import (
    EvalConfig,
    FossilConfig,
    GenerationConfig,
    RetrievalConfig,
    TextConfig,
)
from fossil.models.generator import (
    FINGERPRINT_EXCLUDED,
    generation_fingerprint,
    generation_settings,
)
from fossil.models.loading import TINY_GENERATION
from fossil.query.cache import KEY_EXCLUDED, KEY_OWN_FIELDS, CacheKey, retrieval_options

# another valid value per field, to see that each one changes the key
OTHER_RETRIEVAL: dict[str, Any] = {
    "N": 149,
    "K": 9,
    "niter": 21,
    "nredo": 2,
    "seed": 7,
    "retrieval_threshold": 0.3,
    "prototype_mean": True,
    "exclude_corpora": ("coco",),
    "route": True,
    "route_cover": 11,
    "references": "labelled",
}
OTHER_GENERATION: dict[str, Any] = {
    "height": 256,
    "width": 256,
    "steps": 20,
    "guidance_scale": 5.0,
    "batch_size": 2,
    "heatmap_resolutions": (64, 32),
    "heatmap_size": 32,
    "mask_mode": "minmax",
    "heatmap_threshold": 0.5,
}


def _key(config: RetrievalConfig) -> CacheKey:
    return CacheKey("dog", config.N, config.K, retrieval_options(config), "enc", 3, "c")


def test_every_retrieval_field_is_keyed_or_excluded() -> None:
    keyed = {name for name, _ in retrieval_options(RetrievalConfig())}
    for f in fields(RetrievalConfig):
        assert f.name in keyed | KEY_OWN_FIELDS | KEY_EXCLUDED, f"{f.name}: not in the cache key"
        assert f.name in OTHER_RETRIEVAL, f"{f.name}: give it another value in this test"
        changed = replace(RetrievalConfig(), **{f.name: OTHER_RETRIEVAL[f.name]})
        if f.name not in KEY_EXCLUDED:
            assert _key(changed) != _key(RetrievalConfig()), f"{f.name} does not change the key"
            assert _key(changed).digest() != _key(RetrievalConfig()).digest()


def test_a_new_retrieval_field_is_keyed_without_listing_it() -> None:
    extended = make_dataclass(
        "Extended", [("new_knob", int, 3)], bases=(RetrievalConfig,), frozen=True
    )
    assert ("new_knob", 3) in retrieval_options(extended())
    assert _key(extended(new_knob=4)) != _key(extended())  # type: ignore[arg-type]


def test_the_order_of_excluded_corpora_does_not_matter() -> None:
    a = RetrievalConfig(exclude_corpora=("a", "b"))
    assert _key(a) == _key(replace(a, exclude_corpora=("b", "a")))


SCHEDULER = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "steps_offset": 1}


def test_the_generation_fingerprint_of_stored_collections_is_unchanged() -> None:
    """Point ids and collection_meta hold it: the derived fingerprint must equal the one the
    hand-written list gave (values computed before the change)."""
    assert generation_fingerprint("m", GenerationConfig(), SCHEDULER) == "66c0f857184d61c8"
    assert generation_fingerprint("tiny", TINY_GENERATION, {}) == "dd9114d8cf663fd9"


def test_every_generation_field_is_fingerprinted_or_excluded() -> None:
    base = generation_fingerprint("m", GenerationConfig(), SCHEDULER)
    for f in fields(GenerationConfig):
        assert f.name in generation_settings(GenerationConfig()) or f.name in (FINGERPRINT_EXCLUDED)
        assert f.name in OTHER_GENERATION, f"{f.name}: give it another value in this test"
        changed = replace(GenerationConfig(), **{f.name: OTHER_GENERATION[f.name]})
        differs = generation_fingerprint("m", changed, SCHEDULER) != base
        assert differs == (f.name not in FINGERPRINT_EXCLUDED), f.name


def test_a_new_generation_field_is_fingerprinted_without_listing_it() -> None:
    extended = make_dataclass(
        "Extended", [("new_knob", int, 3)], bases=(GenerationConfig,), frozen=True
    )
    assert generation_settings(extended())["new_knob"] == 3
    assert generation_fingerprint("m", extended(), {}) != generation_fingerprint(
        "m",
        extended(new_knob=4),
        {},  # type: ignore[call-arg]
    )


def test_input_sides_follow_the_patch_size_unless_the_config_sets_them() -> None:
    from fossil.models.loading import load_models

    assert (EvalConfig().dense_size, EvalConfig().key_size) == (None, None)
    default = load_models("tiny", device="cpu", roles=("dense", "keys"))
    assert (default.dense.input_size, default.keys.input_size) == (518, 480)  # /14, /8
    sized = load_models("tiny", device="cpu", roles=("dense", "keys"), dense_size=224, key_size=96)
    assert (sized.dense.input_size, sized.keys.input_size) == (224, 96)
    assert sized.dense.grid == 16 and sized.keys.grid == 12
    with pytest.raises(OSError, match=r"input_size \(100\) must be a multiple of the patch"):
        load_models("tiny", device="cpu", roles=("dense",), dense_size=100).dense  # noqa: B018
    with pytest.raises(ValueError, match=r"dense_size \(0\) must be >= 1"):
        EvalConfig(dense_size=0)


def test_the_analyser_refuses_encoders_at_other_sides_than_the_config() -> None:
    from fossil.pipeline.segmenter import ImageAnalyser

    dense = SimpleNamespace(name="d", input_size=518, dim=8)
    keys = SimpleNamespace(name="k", input_size=480, dim=8)
    ImageAnalyser(dense, keys, FossilConfig())  # type: ignore[arg-type]
    sized = replace(FossilConfig(), eval=EvalConfig(dense_size=518, key_size=480))
    ImageAnalyser(dense, keys, sized)  # type: ignore[arg-type]
    for eval_config, message in [
        (EvalConfig(dense_size=224), "dense encoder takes 518² inputs but the config's dense_size"),
        (EvalConfig(key_size=240), "keys encoder takes 480² inputs but the config's key_size"),
    ]:
        with pytest.raises(ValueError, match=message):
            ImageAnalyser(dense, keys, replace(FossilConfig(), eval=eval_config))  # type: ignore[arg-type]


def test_the_ingest_reads_the_tre_weight_from_its_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TextConfig (no longer a dead FossilConfig field) reaches the batch processing."""
    import fossil.ingest.worker as worker
    from fossil.ingest.corpora import CorpusFile
    from fossil.pipeline.ingest import ingest_corpora
    from fossil.pipeline.ingest_config import IngestOptions, StoreAddress
    from tests.ingest.conftest import FakeModels

    seen: list[float] = []
    real = worker.process_batch

    def record(models: Any, jobs: Any, *, template_weight: float, **rest: Any) -> Any:
        seen.append(template_weight)
        return real(models, jobs, template_weight=template_weight, **rest)

    monkeypatch.setattr(worker, "process_batch", record)
    corpus = CorpusFile(name="c", source="memory", format="txt", captions=("A dog",))
    options = IngestOptions(text=TextConfig(template_weight=0.7))
    ingest_corpora(StoreAddress(tmp_path / "a"), [corpus], FakeModels(), options)
    ingest_corpora(StoreAddress(tmp_path / "b"), [corpus], FakeModels())
    assert seen == [0.7, TextConfig().template_weight]
