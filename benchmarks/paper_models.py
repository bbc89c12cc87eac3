"""The paper's models as architectures with random weights, saved as local model folders
(benchmarks/paper_shapes.py).  ``paper``: the real configs; ``small``: the same classes and
block layouts scaled down (for the CPU mode of benchmarks/gpu_check.sh)."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

import torch

# unet/config.json of stabilityai/stable-diffusion-2-1-base
SD21_BASE_UNET: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "in_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "use_linear_projection": True,
}
SD21_BASE_VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 768,
}
# SD 2.x text encoder: OpenCLIP ViT-H/14's text tower without its last layer (23 of 24)
SD21_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
}
DINOV2_LARGE: dict[str, Any] = {  # facebook/dinov2-large
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 518,
    "layerscale_value": 1.0,
}
DINO_VITB8: dict[str, Any] = {  # facebook/dino-vitb8
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "patch_size": 8,
    "image_size": 224,
}
CLIP_L14_TEXT: dict[str, Any] = {  # openai/clip-vit-large-patch14, text tower
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
PAPER = {
    "unet": SD21_BASE_UNET,
    "vae": SD21_BASE_VAE,
    "sd_text": SD21_TEXT,
    "dense": DINOV2_LARGE,
    "keys": DINO_VITB8,
    "text": CLIP_L14_TEXT,
}
SMALL = {
    "unet": {
        **SD21_BASE_UNET,
        "block_out_channels": [32, 64, 64, 64],
        "attention_head_dim": [2, 4, 4, 4],
        "cross_attention_dim": 64,
        "layers_per_block": 1,
        "norm_num_groups": 16,
    },
    "vae": {
        **SD21_BASE_VAE,
        "block_out_channels": [16, 16, 32, 32],
        "norm_num_groups": 8,
        "layers_per_block": 1,
    },  # fmt: skip
    "sd_text": {
        **SD21_TEXT,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
    },  # fmt: skip
    "dense": {**DINOV2_LARGE, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    "keys": {
        **DINO_VITB8,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
    },  # fmt: skip
    "text": {
        **CLIP_L14_TEXT,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "projection_dim": 64,
    },  # fmt: skip
}
SHAPES = {"paper": PAPER, "small": SMALL}
MARKER = "fossil_paper_shapes.json"


def tokenizer(pad_token: str) -> tuple[Any, str]:
    """OpenAI CLIP's tokenizer (open_clip's BPE file) when installed, else the tiny one (same
    layout, fewer merges: ids stay below 49,408)."""
    from fossil.models.tokenizer import offline_clip_tokenizer, tiny_clip_tokenizer

    try:
        return offline_clip_tokenizer(pad_token=pad_token), "openai-clip-bpe"
    except FileNotFoundError:
        return tiny_clip_tokenizer(pad_token=pad_token), "fossil-tiny-bpe"


def build_models(cache: Path, shapes: str) -> dict[str, Any]:
    """Build and save the four model folders under ``cache`` (kept: a folder with its marker is
    reused).  Returns role → {path, parameters, build_s}."""
    configs = SHAPES[shapes]
    builders = {
        "generator": lambda: _sd_pipeline(configs),
        "dense": lambda: _dinov2(configs["dense"]),
        "keys": lambda: _vit(configs["keys"]),
        "text": lambda: _clip_text(configs["text"]),
    }
    built = {}
    for role, build in builders.items():
        folder = cache / role
        marker = folder / MARKER
        if marker.is_file():
            built[role] = json.loads(marker.read_text())
            continue
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, parameters, note = build()
        model.save_pretrained(folder)
        del model
        gc.collect()
        info = {"path": str(folder), "parameters": parameters, "note": note,
                "build_s": round(time.perf_counter() - started, 1)}  # fmt: skip
        marker.write_text(json.dumps(info))
        built[role] = info
    return built


def _count(*modules: Any) -> int:
    return int(sum(p.numel() for m in modules for p in m.parameters()))


def _sd_pipeline(configs: dict[str, Any]) -> tuple[Any, dict[str, int], str]:
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tok, source = tokenizer(pad_token="!")  # SD 2.x pads with "!"
    unet = UNet2DConditionModel(**configs["unet"])
    vae = AutoencoderKL(**configs["vae"])
    text = CLIPTextModel(CLIPTextConfig(**configs["sd_text"]))
    scheduler = PNDMScheduler(  # scheduler/scheduler_config.json of SD 2.1 base
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
        prediction_type="epsilon",
    )  # fmt: skip
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    parameters = {"unet": _count(unet), "vae": _count(vae), "text_encoder": _count(text)}
    return pipe, parameters, f"tokenizer: {source}"


def _dinov2(config: dict[str, Any]) -> tuple[Any, dict[str, int], str]:
    from transformers import Dinov2Config, Dinov2Model

    model = Dinov2Model(Dinov2Config(**config))
    return model, {"model": _count(model)}, "DINOv2 ViT-L/14 architecture"


def _vit(config: dict[str, Any]) -> tuple[Any, dict[str, int], str]:
    from transformers import ViTConfig, ViTModel

    model = ViTModel(ViTConfig(**config), add_pooling_layer=False)
    return model, {"model": _count(model)}, "DINO ViT-B/8 architecture"


def _clip_text(config: dict[str, Any]) -> tuple[Any, dict[str, int], str]:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tok, source = tokenizer(pad_token="<|endoftext|>")
    model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    return _WithTokenizer(model, tok), {"model": _count(model)}, f"tokenizer: {source}"


class _WithTokenizer:
    """Saves a model and its tokenizer into one folder (what a hub text-tower folder holds)."""

    def __init__(self, model: Any, tok: Any) -> None:
        self.model, self.tok = model, tok

    def save_pretrained(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        self.tok.save_pretrained(folder)
