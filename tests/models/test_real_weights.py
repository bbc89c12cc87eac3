"""Real pretrained weights (``slow``): run where the paper's models are in the local Hugging
Face cache (HF_HUB_OFFLINE is set for tests), skipped otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fossil.config import GenerationConfig, ModelIds
from fossil.models import loading
from fossil.models.text import concept_embeddings

pytestmark = pytest.mark.slow


def load_or_skip(build: Any, *args: Any) -> Any:
    try:
        return build(*args)
    except loading.ModelLoadError as error:
        pytest.skip(f"real weights absent: {str(error).splitlines()[0][:120]}")


def photo() -> np.ndarray:
    """A smooth synthetic image: left half red, right half blue, with a gradient."""
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, :200, 0] = 200
    image[:, 200:, 2] = 200
    image[..., 1] = np.linspace(0, 255, 400, dtype=np.uint8)[None]
    return image


def test_real_clip_text_tower() -> None:
    encoder = load_or_skip(loading.load_text_encoder, ModelIds().text, "cpu")
    assert encoder.dim == 768
    puppy, dog, car = concept_embeddings(encoder, ["puppy", "dog", "car"])
    assert float(puppy @ dog) > float(puppy @ car)


def test_real_dinov2_features() -> None:
    encoder = load_or_skip(loading.load_dense_encoder, ModelIds().dense, "cpu")
    features = encoder.features([photo()])
    assert features.shape == (1, 37, 37, 1024) and np.isfinite(features).all()
    left, right = features[0, :, :15].reshape(-1, 1024), features[0, :, 22:].reshape(-1, 1024)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    assert float((unit(left) @ unit(left).T).mean()) > float((unit(left) @ unit(right).T).mean())


def test_real_dino_keys() -> None:
    encoder = load_or_skip(loading.load_key_encoder, ModelIds().keys, "cpu")
    keys = encoder.features([photo()])
    assert keys.shape == (1, 60, 60, 768)
    np.testing.assert_allclose(np.linalg.norm(keys, axis=-1), 1.0, atol=1e-4)


def test_real_stable_diffusion_heat_maps() -> None:
    config = GenerationConfig(steps=20, batch_size=1)
    generator = load_or_skip(
        loading.load_generator, ModelIds().generator, config, loading.default_device()
    )
    nouns = loading.load_noun_parser("en_core_web_sm").parse(["a dog on a beach"])
    (result,) = generator.generate(["a dog on a beach"], nouns)
    assert [n.lemma for n in result.nouns] == ["dog", "beach"]
    dog = result.masks[0].mean()
    assert 0.01 < dog < 0.9  # the dog occupies part of the image, not all of it
    assert (result.heatmaps >= 0).all() and result.image.shape == (512, 512, 3)
