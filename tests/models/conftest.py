"""Tiny random models for the model-layer tests (built once per session, offline)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest


@pytest.fixture(scope="session")
def clip_tokenizer() -> Any:
    """OpenAI CLIP's tokenizer from the BPE file of ``open_clip_torch`` (scripts/test.sh
    installs it; skipped only where that package is absent)."""
    if importlib.util.find_spec("open_clip") is None:
        pytest.skip("open_clip_torch is not installed: OpenAI CLIP's BPE file is absent")
    from fossil.models.tokenizer import offline_clip_tokenizer

    return offline_clip_tokenizer()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    from fossil.models.tokenizer import tiny_clip_tokenizer

    return tiny_clip_tokenizer()


@pytest.fixture(scope="session")
def tiny_pipe(tiny_tokenizer: Any) -> Any:
    from fossil.models.tiny import tiny_pipeline

    return tiny_pipeline("cpu", tokenizer=tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_text_encoder(tiny_tokenizer: Any) -> Any:
    from fossil.models.text import ClipTextEncoder
    from fossil.models.tiny import tiny_clip_text_model

    return ClipTextEncoder(tiny_clip_text_model(tiny_tokenizer), tiny_tokenizer, "tiny-text")


@pytest.fixture(scope="session")
def noun_parser() -> Any:
    from fossil.models.nouns import SpacyNounParser

    return SpacyNounParser()
