"""Tiny random models for the model-layer tests (built once per session, offline)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def clip_tokenizer() -> Any:
    from fossil.models.tokenizer import offline_clip_tokenizer

    return offline_clip_tokenizer()


@pytest.fixture(scope="session")
def tiny_pipe(clip_tokenizer: Any) -> Any:
    from fossil.models.tiny import tiny_pipeline

    return tiny_pipeline("cpu", tokenizer=clip_tokenizer)


@pytest.fixture(scope="session")
def tiny_text_encoder(clip_tokenizer: Any) -> Any:
    from fossil.models.text import ClipTextEncoder
    from fossil.models.tiny import tiny_clip_text_model

    return ClipTextEncoder(tiny_clip_text_model(), clip_tokenizer, "tiny-text")


@pytest.fixture(scope="session")
def noun_parser() -> Any:
    from fossil.models.nouns import SpacyNounParser

    return SpacyNounParser()
