"""Test session set-up: never reach the model hub; shared fixtures."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub: an accidental download fails loudly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
