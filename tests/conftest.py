"""Test session set-up: never reach the model hub; shared fixtures."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

# Set before anything imports huggingface_hub: an accidental download fails loudly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def models_loaded_once() -> Iterator[None]:
    """Within it, ``fossil.models.loading.load_models`` builds each (profile, device,
    generation, roles) bundle once: CLI tests that run many commands on tiny models test the
    commands, not model loading."""
    import pytest

    import fossil.models.loading as loading

    real, cache = loading.load_models, {}

    def load(profile="paper", *, device=None, generation=None, roles=loading.ROLES, **sizes):  # noqa: ANN001, ANN003, ANN202
        key = (str(profile), device, generation, frozenset(roles), tuple(sorted(sizes.items())))
        if key not in cache:
            cache[key] = real(profile, device=device, generation=generation, roles=roles, **sizes)
        return cache[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loading, "load_models", load)
        yield


TINY_CAPTIONS = ["A dog running on the beach", "A red car parked near a tree", "A cat on a couch"]


def build_tiny_store(tmp: Path) -> Path:
    """``fossil ingest --models tiny`` of :data:`TINY_CAPTIONS` (written to
    ``tmp/captions.txt``) into the store ``tmp/store``, returned."""
    from fossil.cli import main

    source = tmp / "captions.txt"
    source.write_text("\n".join(TINY_CAPTIONS) + "\n")
    store = tmp / "store"
    argv = ["ingest", str(source), "--store", str(store), "--models", "tiny", "--no-progress"]
    assert main(argv) == 0
    return store
