"""Heat-map recording overhead per denoising step (design §5.2) on a UNet of the real SD 2.1 base
shape with random weights: 512² images (64² latent), 2 captions with classifier-free guidance
(UNet batch 4), float32 on CPU.  Prints one JSON object.

    python benchmarks/heatmap_overhead.py [--steps 2] [--captions 2] [--threads N]

Steps alternate default / recording so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.paper_models

from benchmarks.paper_models import SD21_BASE_UNET  # noqa: E402
from fossil.models.generator import hooked_layers, record_cross_attention  # noqa: E402

RESOLUTIONS = (64, 32, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--captions", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    start = time.perf_counter()
    unet = UNet2DConditionModel(**SD21_BASE_UNET).eval()
    build_s = time.perf_counter() - start
    latent = args.size // 8
    batch = 2 * args.captions  # CFG: [unconditional, conditional]
    sample = torch.randn(batch, 4, latent, latent)
    context = torch.randn(batch, 77, 1024)
    timesteps = torch.linspace(900, 100, args.steps).long()

    def step(t: torch.Tensor) -> float:
        begin = time.perf_counter()
        unet(sample, t, encoder_hidden_states=context)
        return time.perf_counter() - begin

    default: list[float] = []
    recording: list[float] = []
    with torch.inference_mode():
        step(timesteps[0])  # warm-up (allocator, kernels)
        with record_cross_attention(unet, RESOLUTIONS, guidance=True) as recorder:
            recorder.start(args.captions, (latent, latent))
            step(timesteps[0])  # warm-up of the recording path
        for t in timesteps:
            default.append(step(t))
            with record_cross_attention(unet, RESOLUTIONS, guidance=True) as recorder:
                recorder.start(args.captions, (latent, latent))
                recording.append(step(t))
    mean_default = sum(default) / len(default)
    mean_recording = sum(recording) / len(recording)
    print(
        json.dumps(
            {
                "unet": "SD 2.1 base config, random weights",
                "parameters_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
                "device": "cpu",
                "threads": torch.get_num_threads(),
                "dtype": "float32",
                "image_size": args.size,
                "captions": args.captions,
                "cfg": True,
                "unet_batch": batch,
                "steps": args.steps,
                "hooked_layers": len(hooked_layers(unet, RESOLUTIONS)),
                "build_s": round(build_s, 1),
                "default_s_per_step": round(mean_default, 3),
                "recording_s_per_step": round(mean_recording, 3),
                "default_steps_s": [round(x, 3) for x in default],
                "recording_steps_s": [round(x, 3) for x in recording],
                "overhead": round(mean_recording / mean_default - 1.0, 4),
                "overhead_min_step": round(min(recording) / min(default) - 1.0, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
