"""Dense visual encoders (design §5.4, §5.7, §5.8) behind the ``DenseEncoder`` protocol.

- :class:`PatchFeatureEncoder`: DINOv2 patch tokens of the last layer (after its LayerNorm),
  at 518² → 37×37×dim, CLS and register tokens dropped (design §5.4).
- :class:`KeyFeatureEncoder`: keys of the last attention layer (heads concatenated, no
  LayerNorm), L2-normalised per patch (design §5.7): DINO ViT-B/8 at 480² → 60×60×768 (the paper's),
  or any DINO-family backbone (DINOv2 /14 at 518² → 37×37, with or without registers).

Both resize every image to ``input_size``² (bicubic, antialiased), apply ImageNet
normalisation and run in batches.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess(
    images: Sequence[np.ndarray], input_size: int, device: str | torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(H, W, 3) uint8 images of any sizes → (B, 3, input_size, input_size) normalised."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    batch = []
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise ValueError(f"images[{i}] must be an (H, W, 3) uint8 array, got {shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"images[{i}] must be uint8, got {image.dtype}")
        x = (
            torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1).float()
            / 255.0
        )
        if x.shape[1:] != (input_size, input_size):
            x = F.interpolate(
                x[None], size=(input_size, input_size), mode="bicubic", antialias=True
            )[0].clamp_(0.0, 1.0)
        batch.append((x - mean) / std)
    return torch.stack(batch).to(device=device, dtype=dtype)


def _interpolation_kwargs(model: Any) -> dict[str, bool]:
    """ViT needs ``interpolate_pos_encoding=True`` at any side but its config's; DINOv2
    always interpolates and takes no such argument."""
    forward = inspect.signature(model.forward).parameters
    return {"interpolate_pos_encoding": True} if "interpolate_pos_encoding" in forward else {}


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class PatchFeatureEncoder:
    """DINOv2 (or any ViT with ``patch_size`` and optional registers) patch features."""

    def __init__(self, model: Any, name: str, input_size: int = 518, batch_size: int = 8) -> None:
        config = model.config
        if input_size % config.patch_size:
            raise ValueError(
                f"input_size ({input_size}) must be a multiple of the patch size "
                f"({config.patch_size}); DINOv2 uses 518"
            )
        self.model, self.name = model.eval(), name
        self.input_size, self.batch_size = input_size, batch_size
        self.dim = int(config.hidden_size)
        self.grid = input_size // config.patch_size
        self.skip = 1 + int(getattr(config, "num_register_tokens", 0) or 0)  # CLS + registers
        self.forward_kwargs = _interpolation_kwargs(model)

    @torch.inference_mode()
    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(B, H, W, 3) uint8 → (B, grid, grid, dim) float32 patch tokens."""
        out = np.zeros((len(images), self.grid, self.grid, self.dim), np.float32)
        param = next(self.model.parameters())
        for part in _batches(len(images), self.batch_size):
            pixels = preprocess(images[part], self.input_size, param.device, param.dtype)
            output = self.model(pixel_values=pixels, **self.forward_kwargs)
            tokens = output.last_hidden_state[:, self.skip :]
            grid = tokens.reshape(len(pixels), self.grid, self.grid, self.dim)
            out[part] = grid.float().cpu().numpy()
        return out


class KeyFeatureEncoder:
    """Last-layer attention keys of a ViT (DINO ViT-B/8 for OpenCut; DINOv2 works the same),
    L2-normalised.

    A forward hook on the last ``k_proj`` captures the keys (heads concatenated); positional
    embeddings are interpolated to ``input_size`` (ViT needs ``interpolate_pos_encoding=True``;
    DINOv2 always interpolates and takes no such argument).  CLS and register tokens dropped.
    """

    def __init__(self, model: Any, name: str, input_size: int = 480, batch_size: int = 8) -> None:
        config = model.config
        if input_size % config.patch_size:
            raise ValueError(
                f"input_size ({input_size}) must be a multiple of the patch size "
                f"({config.patch_size}); DINO ViT-B/8 uses 480, DINOv2 518"
            )
        names = [n for n, _ in model.named_modules() if n.endswith("k_proj") or n.endswith(".key")]
        if not names:
            raise ValueError(f"{name}: no attention key projection (k_proj) found in the model")
        self.model, self.name = model.eval(), name
        self.key_module = model.get_submodule(names[-1])
        self.input_size, self.batch_size = input_size, batch_size
        self.dim = int(self.key_module.out_features)
        self.grid = input_size // config.patch_size
        self.skip = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        self.forward_kwargs = _interpolation_kwargs(model)

    @torch.inference_mode()
    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(B, H, W, 3) uint8 → (B, grid, grid, dim) float32 unit-norm keys."""
        out = np.zeros((len(images), self.grid, self.grid, self.dim), np.float32)
        param = next(self.model.parameters())
        captured: list[torch.Tensor] = []
        handle = self.key_module.register_forward_hook(
            lambda _module, _args, output: captured.append(output)
        )
        try:
            for part in _batches(len(images), self.batch_size):
                captured.clear()
                pixels = preprocess(images[part], self.input_size, param.device, param.dtype)
                self.model(pixel_values=pixels, **self.forward_kwargs)
                keys = captured[-1][:, self.skip :].float()
                keys = F.normalize(keys, dim=-1)
                out[part] = keys.reshape(len(pixels), self.grid, self.grid, self.dim).cpu().numpy()
        finally:
            handle.remove()
        return out
