"""SYNTHETIC world: a templated caption corpus over the vocabulary.

Captions name materials only through their caption phrases ("green grass", "a brick wall"),
never through the held-out synonyms, so querying a synonym ("lawn") at evaluation time
exercises genuine open-vocabulary retrieval.  Some templates add nouns the world cannot
draw ("photo", "view"); the generator skips them like DAAM-less nouns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fossil.demo.vocabulary import VOCABULARY, Material

# Templates by number of materials; {0}, {1}, ... are material phrases.
TEMPLATES: dict[int, tuple[str, ...]] = {
    1: (
        "a photo of {0}",
        "a detailed photo of {0}",
        "a wide shot of {0}",
        "a picture of {0} in the afternoon",
    ),
    2: (
        "{0} next to {1}",
        "{0} and {1}",
        "a photo of {0} and {1}",
        "{0} under {1}",
        "{0} beside {1}",
        "a view of {0} behind {1}",
        "{0} near {1}",
        "a picture of {0} with {1}",
        "{0} in front of {1}",
        "{0} meets {1}",
    ),
    3: (
        "{0}, {1} and {2}",
        "{0} next to {1} under {2}",
        "a photo of {0} with {1} and {2}",
        "{0} between {1} and {2}",
        "a view of {0} and {1} near {2}",
    ),
    4: (
        "{0}, {1}, {2} and {3}",
        "a photo of {0}, {1}, {2} and {3}",
    ),
}
ARITY_WEIGHTS: dict[int, float] = {1: 0.1, 2: 0.55, 3: 0.3, 4: 0.05}


def caption_corpus(
    count: int = 500, seed: int = 0, vocabulary: Sequence[Material] = VOCABULARY
) -> list[str]:
    """``count`` distinct captions over ``vocabulary``, deterministic in ``seed``.

    Each caption mentions 1–4 distinct materials (weights ``ARITY_WEIGHTS``) through a
    random phrase of each, in a random template; the first letter is capitalised and a
    full stop ends it."""
    if count < 1:
        raise ValueError(f"count ({count}) must be >= 1")
    if len(vocabulary) < max(TEMPLATES):
        raise ValueError(f"vocabulary must hold at least {max(TEMPLATES)} materials")
    rng = np.random.default_rng(seed)
    arities = sorted(ARITY_WEIGHTS)
    weights = np.array([ARITY_WEIGHTS[a] for a in arities])
    captions: dict[str, None] = {}
    attempts = 0
    while len(captions) < count:
        attempts += 1
        if attempts > 50 * count:
            raise ValueError(f"cannot write {count} distinct captions over this vocabulary")
        arity = int(rng.choice(arities, p=weights / weights.sum()))
        chosen = rng.choice(len(vocabulary), arity, replace=False)
        phrases = [vocabulary[m].phrases[rng.integers(len(vocabulary[m].phrases))] for m in chosen]
        templates = TEMPLATES[arity]
        text = templates[rng.integers(len(templates))].format(*phrases)
        captions.setdefault(text[0].upper() + text[1:] + ".")
    return list(captions)
