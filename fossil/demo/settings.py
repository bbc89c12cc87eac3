"""SYNTHETIC world: its run settings and what a store built from it records and is known by.

Light on purpose (no numpy, torch or images): ``fossil demo --help`` reads the defaults here,
and every command asks :func:`is_demo_meta` whether a store is a demo store, before any model
or array library is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fossil.config import CollectionSettings, EvalConfig, FossilConfig, RetrievalConfig

if TYPE_CHECKING:
    from fossil.db.protocols import CollectionMeta

DEMO_PROFILE = "demo"  # --models demo: the synthetic world's models
# how the names the synthetic models record (collection_meta) begin: the generator's is
# fossil.demo.generator.WORLD_VERSION, the dense encoder's fossil.demo.encoder's
SYNTHETIC_GENERATOR = "synthetic-world"
SYNTHETIC_ENCODER = "synthetic-"


def demo_fossil_config() -> FossilConfig:
    """The paper's defaults with what the synthetic world's size calls for: ~75 references
    per material, so N=40; K=1, because a few references per material carry another
    material's pixels (imperfect heat maps) and with K>1 they form small clusters whose
    prototypes win eq. 5's max term on the wrong material (measured: K=1 62.9, K=3 39.7,
    K=10 53.5 mIoU per patch); and the protocol scaled to the 256² scenes (one crop)."""
    return FossilConfig(
        retrieval=RetrievalConfig(N=40, K=1),
        eval=EvalConfig(short_side=256, crop=256, stride=128),
    )


@dataclass(frozen=True)
class DemoConfig:
    captions: int = 500  # caption corpus size (≈ 2 references per caption)
    scenes: int = 30  # held-out evaluation scenes
    seed: int = 0  # corpus and scene seed
    batch_size: int = 32  # ingest batch
    overlays: int = 6  # scenes drawn as image | truth | prediction panels
    fossil: FossilConfig = field(default_factory=demo_fossil_config)

    def __post_init__(self) -> None:
        for name in ("captions", "scenes", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")
        if self.overlays < 0:
            raise ValueError(f"overlays ({self.overlays}) must be >= 0")


def demo_settings(config: FossilConfig | None = None) -> CollectionSettings:
    """What a store of the synthetic world records (``collection_meta``): the N, K, γ and
    sides of ``config`` (default: :func:`demo_fossil_config`), what the world is and the
    materials it covers."""
    from fossil.demo.vocabulary import VOCABULARY

    config = config or demo_fossil_config()
    materials = tuple(m.name for m in VOCABULARY)
    synonyms = ", ".join(m.concept for m in VOCABULARY[:4])
    about = (
        f"a SYNTHETIC world of {len(VOCABULARY)} procedural materials, built by `fossil "
        "demo`: a procedural generator stands in for Stable Diffusion and colour/texture "
        "statistics for DINOv2; the text encoder and noun parser are real, so synonyms work "
        f"too (its test scenes say {synonyms}, ...)"
    )
    return CollectionSettings(
        N=config.retrieval.N,
        K=config.retrieval.K,
        gamma=config.scoring.gamma,
        short_side=config.eval.short_side,
        crop=config.eval.crop,
        stride=config.eval.stride,
        about=about,
        examples=materials,
    )


def is_demo_meta(meta: CollectionMeta) -> bool:
    """Whether a collection was built by the synthetic world's models (``fossil demo``)."""
    return meta.generator.startswith(SYNTHETIC_GENERATOR) and meta.dense_encoder.startswith(
        SYNTHETIC_ENCODER
    )
