"""Dense encoders on tiny random DINOv2 / ViT-8 models: grids, token selection, keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fossil.models.dense import IMAGENET_MEAN, IMAGENET_STD, KeyFeatureEncoder, PatchFeatureEncoder
from fossil.models.tiny import tiny_dinov2, tiny_vit8


def images(sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def pixels(image: np.ndarray) -> torch.Tensor:
    """ImageNet normalisation by hand, for an image already at the input size."""
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return ((x - mean[:, None, None]) / std[:, None, None])[None]


def test_dinov2_patch_tokens_at_518() -> None:
    encoder = PatchFeatureEncoder(tiny_dinov2(), "tiny", input_size=518)
    batch = images([(518, 518), (300, 420)])
    features = encoder.features(batch)
    assert features.shape == (2, 37, 37, encoder.dim) and features.dtype == np.float32
    with torch.no_grad():
        tokens = encoder.model(pixel_values=pixels(batch[0])).last_hidden_state
    np.testing.assert_allclose(features[0], tokens[0, 1:].reshape(37, 37, -1), atol=1e-4)


def test_batches_agree_and_any_image_size_works() -> None:
    encoder = PatchFeatureEncoder(tiny_dinov2(), "tiny", input_size=112, batch_size=2)
    batch = images([(112, 112), (300, 420), (31, 64)])
    features = encoder.features(batch)
    assert features.shape == (3, 8, 8, encoder.dim)
    encoder.batch_size = 1
    np.testing.assert_allclose(encoder.features(batch), features, atol=1e-5)


def test_registers_are_skipped() -> None:
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = Dinov2WithRegistersConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=56,
        num_register_tokens=4,
    )
    torch.manual_seed(0)
    encoder = PatchFeatureEncoder(Dinov2WithRegistersModel(config), "reg", input_size=56)
    assert encoder.skip == 5
    (image,) = images([(56, 56)])
    with torch.no_grad():
        tokens = encoder.model(pixel_values=pixels(image)).last_hidden_state
    assert tokens.shape[1] == 1 + 4 + 16
    np.testing.assert_allclose(encoder.features([image])[0], tokens[0, 5:].reshape(4, 4, 16))


def test_dino_keys_are_last_layer_k_proj_unit_norm() -> None:
    encoder = KeyFeatureEncoder(tiny_vit8(), "tiny", input_size=480)
    batch = images([(480, 480), (200, 300)])
    keys = encoder.features(batch)
    assert keys.shape == (2, 60, 60, encoder.dim) and keys.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(keys, axis=-1), 1.0, atol=1e-5)
    # by hand: input of the last block → its pre-attention LayerNorm → key projection
    model = encoder.model
    names = [n for n, _ in model.named_modules() if n.endswith("k_proj")]
    block = names[-1].rsplit(".attention.", 1)[0]
    with torch.no_grad():
        out = model(pixel_values=pixels(batch[0]), interpolate_pos_encoding=True,
                    output_hidden_states=True)  # fmt: skip
        normed = model.get_submodule(f"{block}.layernorm_before")(out.hidden_states[-2])
        by_hand = torch.nn.functional.normalize(encoder.key_module(normed)[0, 1:], dim=-1)
    np.testing.assert_allclose(keys[0], by_hand.reshape(60, 60, -1), atol=1e-5)


def test_bad_images_and_sizes() -> None:
    encoder = PatchFeatureEncoder(tiny_dinov2(), "tiny", input_size=518)
    with pytest.raises(ValueError, match=r"images\[1\] must be an \(H, W, 3\)"):
        encoder.features([images([(20, 20)])[0], np.zeros((20, 20), np.uint8)])
    with pytest.raises(ValueError, match=r"images\[0\] must be uint8"):
        encoder.features([np.zeros((20, 20, 3), np.float32)])
    with pytest.raises(ValueError, match="multiple of the patch size"):
        PatchFeatureEncoder(tiny_dinov2(), "tiny", input_size=512)
    assert encoder.features([]).shape == (0, 37, 37, encoder.dim)


def _save(model: object, folder: Path) -> str:
    model.save_pretrained(folder)  # type: ignore[attr-defined]
    return str(folder)


@pytest.mark.parametrize("family", ["vit", "dinov2", "dinov2_with_registers"])
def test_keys_and_dense_roles_load_every_dino_family_folder(family: str, tmp_path: Path) -> None:
    """Detected from the folder's config; the input sides follow the patch size (keys /8:
    480 → 60×60, /14: 518 → 37×37; dense 518 at /14, 512 at /8); register tokens are
    skipped in both roles."""
    import transformers

    from fossil.models.loading import load_dense_encoder, load_key_encoder

    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    if family == "vit":
        model = transformers.ViTModel(
            transformers.ViTConfig(**common, intermediate_size=64, patch_size=8, image_size=224),
            add_pooling_layer=False,
        )
        side, grid = 480, 60
    elif family == "dinov2":
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common, patch_size=14))
        side, grid = 518, 37
    else:
        config = transformers.Dinov2WithRegistersConfig(
            **common, patch_size=14, num_register_tokens=4
        )
        model = transformers.Dinov2WithRegistersModel(config)
        side, grid = 518, 37
    folder = _save(model, tmp_path / family)
    keys = load_key_encoder(folder, "cpu")
    dense = load_dense_encoder(folder, "cpu")
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    assert (keys.input_size, keys.grid) == (side, grid)
    assert keys.features([image]).shape == (1, grid, grid, 32)
    skip = 1 + (4 if family == "dinov2_with_registers" else 0)
    assert keys.skip == dense.skip == skip
    dense_grid = 64 if family == "vit" else 37
    assert dense.features([image]).shape == (1, dense_grid, dense_grid, 32)


def test_a_non_dino_folder_is_refused_with_the_supported_types(tmp_path: Path) -> None:
    import transformers

    from fossil.models.loading import ModelLoadError, load_key_encoder

    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    folder = _save(transformers.BertModel(config), tmp_path / "bert")
    with pytest.raises(ModelLoadError, match="dinov2_with_registers"):
        load_key_encoder(folder, "cpu")
