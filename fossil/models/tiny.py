"""Tiny random-initialised models built from configs, offline (the ``tiny`` profile, design §6).

Their outputs are meaningless: they exist so that smoke runs and tests exercise the real code
paths (shapes, processors, batching) in seconds without any download.  Every builder seeds
its own forked RNG, so two builds give identical weights and the global RNG is untouched.
"""

from __future__ import annotations

from typing import Any

import torch

from fossil.models.tokenizer import tiny_clip_tokenizer

TINY_SEED = 0
TEXT_DIM = 32  # hidden size of the tiny CLIP text towers


def tiny_text_config(tokenizer: Any, projection_dim: int = TEXT_DIM) -> Any:
    """A 2-layer CLIP text config whose vocabulary and special ids are ``tokenizer``'s (the
    tiny one, or OpenAI CLIP's 49,408 tokens)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tiny_unet() -> Any:
    """Two resolutions with cross-attention at both (factors 1 and 2), heads 2 and 4."""
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=TEXT_DIM,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            norm_num_groups=16,
        )


def tiny_vae() -> Any:
    """Four blocks: the latent is 1/8 of the image, as in SD."""
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 1)
        return AutoencoderKL(
            block_out_channels=(8, 8, 16, 16),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            norm_num_groups=8,
            layers_per_block=1,
        )


def tiny_pipeline(device: str = "cpu", tokenizer: Any = None) -> Any:
    """A tiny ``StableDiffusionPipeline`` (no safety checker) on ``device``, float32, with
    ``tokenizer`` (default: :func:`fossil.models.tokenizer.tiny_clip_tokenizer`)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    tokenizer = tokenizer if tokenizer is not None else tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 2)
        text_encoder = CLIPTextModel(tiny_text_config(tokenizer))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe: Any = StableDiffusionPipeline(
        vae=tiny_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=tiny_unet(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(device)


def tiny_clip_text_model(tokenizer: Any) -> Any:
    """A tiny ``CLIPTextModelWithProjection`` for the text role, sized to ``tokenizer``."""
    from transformers import CLIPTextModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 3)
        return CLIPTextModelWithProjection(tiny_text_config(tokenizer)).eval()


def tiny_dinov2() -> Any:
    """A 2-layer DINOv2 with patch 14 (37×37 patches at 518, as the real one)."""
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=518,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 4)
        return Dinov2Model(config).eval()


def tiny_vit8() -> Any:
    """A 2-layer ViT with patch 8 (60×60 patches at 480, as DINO ViT-B/8)."""
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=8,
        image_size=224,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 5)
        return ViTModel(config, add_pooling_layer=False).eval()
