"""Stable Diffusion generation with DAAM cross-attention heat maps (design §5.1–§5.3).

:func:`record_cross_attention` installs a :class:`RecordingAttnProcessor` on the hooked
``attn2`` (cross-attention) layers of a UNet through ``set_attn_processor`` and restores the
original processors in ``finally``; self-attention keeps its fast path.  The recorder sums the
conditional half of the attention probabilities over the denoising steps, per layer, in
float32.  :class:`StableDiffusionGenerator` wraps a diffusers pipeline behind the
:class:`~fossil.models.protocols.Generator` protocol.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from fossil.config import GenerationConfig
from fossil.models.heatmaps import aggregate_heatmaps, binarize, token_positions
from fossil.records import GeneratedImage, Noun

logger = logging.getLogger(__name__)

# design §5.2 resolutions are latent sides of the paper's 512² generation (64² latent); a layer's
# downsampling factor relative to the latent (1, 2, 4, …) is what selects it at any size.
REFERENCE_LATENT_SIDE = 64
_BLOCK = re.compile(r"^(down_blocks|up_blocks|mid_block)\.(\d+\.)?")


def caption_seed(caption: str) -> int:
    """Stable seed of a caption: the first 63 bits of SHA-256 of its UTF-8 text (design §5.1)."""
    digest = hashlib.sha256(caption.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def resolution_factors(resolutions: Sequence[int]) -> set[int]:
    """design §5.2 latent sides (64, 32, 16) → downsampling factors from the latent (1, 2, 4)."""
    factors = set()
    for r in resolutions:
        if r < 1 or REFERENCE_LATENT_SIDE % r:
            raise ValueError(
                f"heatmap resolution {r} must divide the reference latent side "
                f"{REFERENCE_LATENT_SIDE} (e.g. 64, 32, 16, 8)"
            )
        factors.add(REFERENCE_LATENT_SIDE // r)
    return factors


def hooked_layers(unet: Any, resolutions: Sequence[int]) -> dict[str, int]:
    """Processor names of the cross-attention layers to record → their downsampling factor.

    Only ``attn2`` of down and up blocks, never mid (design §5.2).  Down block ``i`` runs at
    factor 2**i, up block ``j`` at 2**(len(up_blocks) − 1 − j).
    """
    wanted = resolution_factors(resolutions)
    num_up = len(unet.up_blocks)
    layers: dict[str, int] = {}
    for name in unet.attn_processors:
        if ".attn2." not in name:
            continue
        match = _BLOCK.match(name)
        if match is None or match.group(1) == "mid_block":
            continue
        index = int(match.group(2)[:-1])
        factor = 2**index if match.group(1) == "down_blocks" else 2 ** (num_up - 1 - index)
        if factor in wanted:
            layers[name] = factor
    return layers


def layer_side(latent_side: int, factor: int) -> int:
    """Side of a UNet feature map at ``factor`` (stride-2 convs round up)."""
    side = latent_side
    while factor > 1:
        side, factor = -(-side // 2), factor // 2
    return side


class AttentionRecorder:
    """Per hooked layer, the sum over calls of the conditional attention probabilities.

    ``sums[name]``: (B, heads, h·w, T) float32, B the number of captions.  Call
    :meth:`start` before each batch with its caption count and latent size.
    """

    def __init__(self, layers: Mapping[str, int], guidance: bool) -> None:
        self.layers = dict(layers)
        self.guidance = guidance
        self.sums: dict[str, torch.Tensor] = {}
        self.batch = 0
        self.latent_hw = (0, 0)

    def start(self, batch: int, latent_hw: tuple[int, int]) -> None:
        self.sums.clear()
        self.batch, self.latent_hw = batch, latent_hw

    def record(self, name: str, probs: torch.Tensor) -> None:
        """``probs``: (B_cfg, heads, h·w, T) attention probabilities of layer ``name``."""
        calls = self.batch * (2 if self.guidance else 1)
        if probs.shape[0] != calls:
            raise RuntimeError(
                f"{name}: attention batch {probs.shape[0]} != expected {calls} "
                f"({self.batch} captions, guidance={self.guidance})"
            )
        factor = self.layers[name]
        h, w = (layer_side(s, factor) for s in self.latent_hw)
        if probs.shape[2] != h * w:
            raise RuntimeError(f"{name}: {probs.shape[2]} queries, expected {h}×{w} at 1/{factor}")
        conditional = probs[calls - self.batch :]  # CFG batch is [unconditional, conditional]
        if name in self.sums:
            self.sums[name].add_(conditional)
        else:
            self.sums[name] = conditional.to(torch.float32, copy=True)

    def layer_maps(self, index: int) -> list[torch.Tensor]:
        """Caption ``index``'s maps: per recorded layer (heads, h, w, T)."""
        maps = []
        for name, total in self.sums.items():
            h, w = (layer_side(s, self.layers[name]) for s in self.latent_hw)
            heads, _, tokens = total.shape[1:]
            maps.append(total[index].reshape(heads, h, w, tokens))
        return maps


class RecordingAttnProcessor:
    """Cross-attention with its probabilities handed to a recorder.

    The default SDPA processor never materialises probabilities; this one computes them once
    on (B, heads, h·w, T) views (no head-to-batch copies; the scale is folded into the 77
    keys) and reuses them for the output.  Same arithmetic as diffusers' ``AttnProcessor``.
    """

    def __init__(self, recorder: AttentionRecorder, name: str) -> None:
        self.recorder, self.name = recorder, name

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        b, queries, tokens = hidden_states.shape[0], hidden_states.shape[1], context.shape[1]
        query = attn.to_q(hidden_states).view(b, queries, attn.heads, -1).transpose(1, 2)
        key = attn.to_k(context).view(b, tokens, attn.heads, -1).transpose(1, 2)
        value = attn.to_v(context).view(b, tokens, attn.heads, -1).transpose(1, 2)
        dtype = query.dtype
        if attn.upcast_attention:
            query, key = query.float(), key.float()
        scores = query @ (key * attn.scale).transpose(-1, -2)  # (B, heads, hw, T)
        if attention_mask is not None:
            mask = attn.prepare_attention_mask(attention_mask, tokens, b)
            scores = scores + mask.view(b, attn.heads, -1, tokens)
        if attn.upcast_softmax:
            scores = scores.float()
        probs = scores.softmax(dim=-1).to(dtype)
        self.recorder.record(self.name, probs)
        hidden_states = (probs @ value).transpose(1, 2).reshape(b, queries, -1)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextmanager
def record_cross_attention(
    unet: Any, resolutions: Sequence[int], guidance: bool
) -> Iterator[AttentionRecorder]:
    """Install recording processors on the hooked ``attn2`` layers; restore on exit.

    ``set_attn_processor`` needs a processor for every layer (design §10), so the others get their
    current one back.  The originals are restored even when the body raises.
    """
    original = dict(unet.attn_processors)
    layers = hooked_layers(unet, resolutions)
    if not layers:
        raise ValueError(f"no cross-attention layer of the UNet is at resolutions {resolutions}")
    recorder = AttentionRecorder(layers, guidance)
    processors = {
        name: RecordingAttnProcessor(recorder, name) if name in layers else processor
        for name, processor in original.items()
    }
    unet.set_attn_processor(processors)
    try:
        yield recorder
    finally:
        unet.set_attn_processor(dict(original))  # set_attn_processor pops from its argument


class StableDiffusionGenerator:
    """A diffusers Stable Diffusion pipeline as a ``Generator`` (design §5.1–§5.3)."""

    def __init__(
        self, pipeline: Any, config: GenerationConfig, name: str, *, progress: bool = False
    ) -> None:
        resolution_factors(config.heatmap_resolutions)  # validate early
        self.pipeline, self.config, self.name = pipeline, config, name
        self.progress = progress
        scheduler = {"class": type(pipeline.scheduler).__name__, **pipeline.scheduler.config}
        self.fingerprint = generation_fingerprint(name, config, scheduler)

    def generate(
        self, captions: Sequence[str], nouns: Sequence[Sequence[Noun]]
    ) -> list[GeneratedImage]:
        """One image per caption, seeded from its text, with a heat map and mask per noun."""
        check_inputs(captions, nouns)
        out: list[GeneratedImage] = []
        size = self.config.batch_size
        for start in range(0, len(captions), size):
            batch = self._generate_batch(
                captions[start : start + size], nouns[start : start + size]
            )
            out.extend(batch)
        return out

    def _locate(self, caption: str, nouns: Sequence[Noun]) -> list[list[int]]:
        tokenizer = self.pipeline.tokenizer
        ids = tokenizer(caption, truncation=True, max_length=tokenizer.model_max_length).input_ids
        content = ids[1:-1]  # drop start/end: what remains is what the text encoder sees
        return [
            token_positions(content, tokenizer(n.text, add_special_tokens=False).input_ids)
            for n in nouns
        ]

    def _generate_batch(
        self, captions: Sequence[str], nouns: Sequence[Sequence[Noun]]
    ) -> list[GeneratedImage]:
        cfg, pipe = self.config, self.pipeline
        seeds = [caption_seed(c) for c in captions]
        latent_hw = (cfg.height // pipe.vae_scale_factor, cfg.width // pipe.vae_scale_factor)
        shape = (1, pipe.unet.config.in_channels, *latent_hw)
        latents = torch.cat(
            [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
        ).to(device=pipe.device, dtype=pipe.unet.dtype)
        pipe.set_progress_bar_config(disable=not self.progress)
        guidance = cfg.guidance_scale > 1.0
        with record_cross_attention(pipe.unet, cfg.heatmap_resolutions, guidance) as recorder:
            recorder.start(len(captions), latent_hw)
            result = pipe(
                prompt=list(captions),
                height=cfg.height,
                width=cfg.width,
                num_inference_steps=cfg.steps,
                guidance_scale=cfg.guidance_scale,
                latents=latents,
                output_type="np",
            )
        images = (np.clip(result.images, 0.0, 1.0) * 255).round().astype(np.uint8)
        out = [
            self._result(i, caption, seed, images[i], nouns[i], recorder)
            for i, (caption, seed) in enumerate(zip(captions, seeds, strict=True))
        ]
        log_batch_stats(out)
        return out

    def _result(
        self,
        index: int,
        caption: str,
        seed: int,
        image: np.ndarray,
        nouns: Sequence[Noun],
        recorder: AttentionRecorder,
    ) -> GeneratedImage:
        cfg = self.config
        positions = self._locate(caption, nouns)
        found = [(n, p) for n, p in zip(nouns, positions, strict=True) if p]
        skipped = tuple(n for n, p in zip(nouns, positions, strict=True) if not p)
        if found:
            heat = aggregate_heatmaps(
                recorder.layer_maps(index), [p for _, p in found], cfg.heatmap_size
            ).numpy()
            masks = np.stack(
                [binarize(m, cfg.mask_mode, cfg.heatmap_threshold, image.shape[:2]) for m in heat]
            )
        else:
            heat = np.zeros((0, cfg.heatmap_size, cfg.heatmap_size), np.float32)
            masks = np.zeros((0, *image.shape[:2]), bool)
        return GeneratedImage(
            caption=caption,
            seed=seed,
            image=image,
            nouns=tuple(n for n, _ in found),
            heatmaps=heat.astype(np.float32),
            masks=masks,
            skipped=skipped,
        )


def check_inputs(captions: Sequence[str], nouns: Sequence[Sequence[Noun]]) -> None:
    """Reject a bare string, a length mismatch and empty or non-text captions (design §8)."""
    if isinstance(captions, str):
        raise TypeError("captions must be a sequence of strings, not one string")
    if len(nouns) != len(captions):
        raise ValueError(f"got {len(captions)} captions but {len(nouns)} noun lists")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise ValueError(f"captions[{i}] is {type(caption).__name__}, expected a string")
        if not caption.strip():
            raise ValueError(f"captions[{i}] is empty: every caption needs text to generate from")


# GenerationConfig fields that do not change images or masks, so they stay out of the
# fingerprint: batched and single generation agree.  Every other field is in it, a new one too.
FINGERPRINT_EXCLUDED: frozenset[str] = frozenset({"batch_size"})


def generation_settings(config: GenerationConfig) -> dict[str, object]:
    """The fingerprinted fields of ``config`` (all but :data:`FINGERPRINT_EXCLUDED`), by name."""
    values = {f.name: getattr(config, f.name) for f in fields(config)}
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in values.items()
        if k not in FINGERPRINT_EXCLUDED
    }


def generation_fingerprint(name: str, config: GenerationConfig, scheduler: dict) -> str:
    """Hash of everything that changes images or masks (design §4): model, scheduler, settings
    (:func:`generation_settings`).

    ``batch_size`` is left out (batched and single generation agree), and so is the dtype
    (float16 on CUDA vs float32 on CPU differ only by rounding).
    """
    settings = {
        "model": name,
        "scheduler": {k: v for k, v in scheduler.items() if not k.startswith("_")},
        **generation_settings(config),
        "seeding": "sha256-63/cpu-randn/v1",
    }
    blob = json.dumps(settings, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def log_batch_stats(results: Sequence[GeneratedImage]) -> None:
    """Mask-area statistics per batch, so a bad design §5.3 setting is visible in the logs."""
    areas = [float(m.mean()) for r in results for m in r.masks]
    skipped = sum(len(r.skipped) for r in results)
    no_nouns = sum(1 for r in results if not r.nouns)
    if areas:
        logger.info(
            "masks: %d, area mean %.3f min %.3f max %.3f, empty %d; nouns skipped %d; "
            "captions without located nouns %d",
            len(areas),
            float(np.mean(areas)),
            min(areas),
            max(areas),
            sum(a == 0.0 for a in areas),
            skipped,
            no_nouns,
        )
    else:
        logger.info("no masks; nouns skipped %d; captions without nouns %d", skipped, no_nouns)
