"""Generator + recording processors on a tiny SD pipeline (64 px, 2 DDIM steps) and the
processor selection on a UNet of the real SD 2.1 base shape (meta device, no weights)."""

from __future__ import annotations

import os
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from fossil.config import GenerationConfig
from fossil.models.generator import (
    RecordingAttnProcessor,
    StableDiffusionGenerator,
    caption_seed,
    hooked_layers,
    record_cross_attention,
)
from fossil.records import GeneratedImage, Noun

TINY = GenerationConfig(height=64, width=64, steps=2, batch_size=4)

# unet/config.json of stabilityai/stable-diffusion-2-1-base
SD21_BASE_UNET = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "use_linear_projection": True,
}


def nouns_of(caption: str, *words: str) -> list[Noun]:
    out = []
    for word in words:
        start = caption.index(word)
        out.append(Noun(word, word, start, start + len(word)))
    return out


def processors_of(unet: Any) -> dict[str, int]:
    return {name: id(p) for name, p in unet.attn_processors.items()}


@pytest.fixture(scope="module")
def generator(tiny_pipe: Any) -> StableDiffusionGenerator:
    return StableDiffusionGenerator(tiny_pipe, TINY, "tiny")


CAPTIONS = ["a dog on a red sofa", "a traffic light near a car", "two cats and a dog"]
NOUNS = [
    nouns_of(CAPTIONS[0], "dog", "sofa"),
    nouns_of(CAPTIONS[1], "traffic light", "car"),
    nouns_of(CAPTIONS[2], "cats", "dog"),
]


@pytest.fixture(scope="module")
def batched(generator: StableDiffusionGenerator) -> list[GeneratedImage]:
    before = processors_of(generator.pipeline.unet)
    results = generator.generate(CAPTIONS, NOUNS)
    assert processors_of(generator.pipeline.unet) == before  # restored after generation
    return results


def test_heat_maps_and_masks_for_every_noun(batched: list[GeneratedImage]) -> None:
    assert [r.caption for r in batched] == CAPTIONS
    for result, nouns in zip(batched, NOUNS, strict=True):
        assert result.seed == caption_seed(result.caption)
        assert result.image.shape == (64, 64, 3) and result.image.dtype == np.uint8
        assert result.nouns == tuple(nouns) and result.skipped == ()
        assert result.heatmaps.shape == (len(nouns), 64, 64)
        assert result.heatmaps.dtype == np.float32
        assert np.isfinite(result.heatmaps).all() and (result.heatmaps >= 0).all()
        assert result.heatmaps.reshape(len(nouns), -1).max(axis=1).min() > 0
        assert result.masks.shape == (len(nouns), 64, 64) and result.masks.dtype == bool
    assert not np.array_equal(batched[0].image, batched[1].image)


def test_batched_and_single_generation_agree(
    generator: StableDiffusionGenerator, batched: list[GeneratedImage]
) -> None:
    single = generator.generate([CAPTIONS[2]], [NOUNS[2]])[0]
    assert single.seed == batched[2].seed
    np.testing.assert_allclose(single.heatmaps, batched[2].heatmaps, rtol=1e-4, atol=1e-6)
    assert np.abs(single.image.astype(int) - batched[2].image).max() <= 1
    assert (single.masks != batched[2].masks).mean() < 0.01


def test_unlocatable_nouns_and_captions_without_nouns(
    generator: StableDiffusionGenerator,
) -> None:
    long = "a photo of " + "very " * 80 + "big zebra"  # the zebra is truncated away
    caption = "a dog in a park"
    nouns = [
        nouns_of(long, "photo", "zebra"),
        nouns_of(caption, "dog") + [Noun("cat", "cat", 0, 0)],
        [],
    ]
    results = generator.generate([long, caption, "running fast"], nouns)
    assert [n.text for n in results[0].nouns] == ["photo"]
    assert [n.text for n in results[0].skipped] == ["zebra"]
    assert [n.text for n in results[1].skipped] == ["cat"]
    assert results[1].heatmaps.shape == (1, 64, 64) and results[1].masks.shape == (1, 64, 64)
    empty = results[2]
    assert empty.nouns == () and empty.skipped == ()
    assert empty.heatmaps.shape == (0, 64, 64) and empty.masks.shape == (0, 64, 64)


def test_bad_input(generator: StableDiffusionGenerator) -> None:
    with pytest.raises(ValueError, match=r"captions\[1\] is empty"):
        generator.generate(["a dog", "  "], [[], []])
    with pytest.raises(ValueError, match="2 captions but 1 noun lists"):
        generator.generate(["a dog", "a cat"], [[]])
    with pytest.raises(TypeError, match="not one string"):
        generator.generate("a dog", [[]])  # type: ignore[arg-type]


def test_fingerprint_covers_settings_that_change_outputs(tiny_pipe: Any) -> None:
    def fingerprint(config: GenerationConfig, name: str = "tiny") -> str:
        return StableDiffusionGenerator(tiny_pipe, config, name).fingerprint

    base = fingerprint(TINY)
    assert base == fingerprint(GenerationConfig(height=64, width=64, steps=2, batch_size=4))
    assert base == fingerprint(replace(TINY, batch_size=1))
    changed = [
        replace(TINY, steps=3),
        replace(TINY, guidance_scale=5.0),
        replace(TINY, mask_mode="minmax"),
        replace(TINY, heatmap_threshold=0.5),
        replace(TINY, heatmap_resolutions=(64, 32)),
        replace(TINY, height=128),
    ]
    prints = {fingerprint(c) for c in changed} | {fingerprint(TINY, "other-model")}
    assert base not in prints and len(prints) == len(changed) + 1
    from diffusers import PNDMScheduler

    other = SimpleNamespace(scheduler=PNDMScheduler.from_config(tiny_pipe.scheduler.config))
    assert StableDiffusionGenerator(other, TINY, "tiny").fingerprint != base


def test_recording_processor_matches_default_and_sums_probabilities(tiny_pipe: Any) -> None:
    unet = tiny_pipe.unet
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    context = torch.randn(2, 77, 32, generator=generator)
    t = torch.tensor(500)
    with torch.no_grad():
        reference = unet(sample, t, encoder_hidden_states=context).sample
        with record_cross_attention(unet, (64, 32, 16), guidance=True) as recorder:
            recorder.start(1, (8, 8))
            recorded = unet(sample, t, encoder_hidden_states=context).sample
            unet(sample, t, encoder_hidden_states=context)
    torch.testing.assert_close(recorded, reference, rtol=1e-4, atol=1e-5)
    assert set(recorder.sums) == set(hooked_layers(unet, (64, 32, 16)))
    for name, total in recorder.sums.items():
        heads = 2 if recorder.layers[name] == 1 else 4
        side = 8 // recorder.layers[name]
        assert total.shape == (1, heads, side * side, 77) and total.dtype == torch.float32
        # each attention row sums to 1 over the tokens; 2 UNet calls were recorded
        torch.testing.assert_close(total.sum(-1), torch.full(total.shape[:-1], 2.0))


def test_processors_restored_after_an_exception(tiny_pipe: Any) -> None:
    unet = tiny_pipe.unet
    before = processors_of(unet)
    with pytest.raises(RuntimeError, match="attention batch 4 != expected 2"):
        with record_cross_attention(unet, (64, 32, 16), guidance=True) as recorder:
            hooked = [p for p in unet.attn_processors.values()]
            assert sum(isinstance(p, RecordingAttnProcessor) for p in hooked) == 6
            recorder.start(1, (8, 8))  # says 1 caption, the pipeline sends 2: raises inside
            tiny_pipe(prompt=["a dog", "a cat"], height=64, width=64, num_inference_steps=1)
    assert processors_of(unet) == before


def test_processor_selection_on_real_sd21_base_unet() -> None:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD21_BASE_UNET)
    cross = [n for n in unet.attn_processors if ".attn2." in n]
    assert len(cross) == 16
    layers = hooked_layers(unet, (64, 32, 16))
    by_factor = {f: sorted(n for n, g in layers.items() if g == f) for f in (1, 2, 4)}
    assert {f: len(names) for f, names in by_factor.items()} == {1: 5, 2: 5, 4: 5}
    assert not any(n.startswith("mid_block") for n in layers)
    heads = {f: {unet.get_submodule(n.removesuffix(".processor")).heads for n in names}
             for f, names in by_factor.items()}  # fmt: skip
    assert heads == {1: {5}, 2: {10}, 4: {20}}  # design §10: 5/10/20 heads at 64²/32²/16²
    assert hooked_layers(unet, (64,)) == {n: 1 for n in by_factor[1]}
    before = processors_of(unet)
    with record_cross_attention(unet, (64, 32, 16), guidance=True):
        installed = unet.attn_processors
        assert {n for n, p in installed.items() if isinstance(p, RecordingAttnProcessor)} == set(
            layers
        )
        assert all(id(installed[n]) == before[n] for n in installed if n not in layers)
    assert processors_of(unet) == before


def test_no_cfg_records_the_whole_batch(tiny_pipe: Any) -> None:
    config = replace(TINY, guidance_scale=1.0)
    generator = StableDiffusionGenerator(tiny_pipe, config, "tiny")
    (result,) = generator.generate([CAPTIONS[0]], [NOUNS[0]])
    assert result.heatmaps.shape == (2, 64, 64) and (result.heatmaps >= 0).all()


def test_fingerprint_is_the_same_in_every_process() -> None:
    """diffusers records ``_use_default_values`` in the scheduler config as a list built from
    a set: its order changes with the string hash seed.  Private keys are left out of the
    fingerprint, or a second ``fossil ingest`` on the same store is refused as "built with
    other settings"."""
    import subprocess
    import sys

    code = (
        "from fossil.models.loading import load_generator, read_profile\n"
        "_, config, _ = read_profile('tiny')\n"
        "print(load_generator('tiny', config, 'cpu').fingerprint)\n"
    )
    prints = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        prints.add(done.stdout.strip().splitlines()[-1])
    assert len(prints) == 1
