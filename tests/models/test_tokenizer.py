"""The offline CLIP tokenizer gives OpenAI CLIP's ids."""

from __future__ import annotations

from typing import Any

from fossil.models.tokenizer import VOCAB_SIZE, bytes_to_unicode, clip_vocab_and_merges


def test_vocabulary_layout() -> None:
    vocab, merges = clip_vocab_and_merges()
    assert len(vocab) == VOCAB_SIZE and len(merges) == 48894
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    assert len(set(bytes_to_unicode().values())) == 256


def test_known_clip_ids(clip_tokenizer: Any) -> None:
    ids = clip_tokenizer("A photo of a Traffic light, and a hot-dog!").input_ids
    # ids of OpenAI CLIP's tokenizer (lowercased; punctuation split off)
    assert ids == [
        49406,
        320,
        1125,
        539,
        320,
        3399,
        1395,
        267,
        537,
        320,
        2069,
        268,
        1929,
        256,
        49407,
    ]
    assert clip_tokenizer.model_max_length == 77
    padded = clip_tokenizer("a dog", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == 49407
