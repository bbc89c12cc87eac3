"""An offline CLIP tokenizer built from the BPE file shipped inside ``open_clip_torch`` (§10).

The real pipelines bring their own tokenizer; this one serves the tiny profile and tests,
where no hub download is possible.  Ids equal OpenAI CLIP's: 256 byte characters, the same
with ``</w>``, the 48,894 merges joined, then ``<|startoftext|>`` and ``<|endoftext|>``
(49,408 entries).  ``open_clip`` itself is never imported (it pulls torchvision).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # as open_clip's SimpleTokenizer
VOCAB_SIZE = 49408
MAX_LENGTH = 77


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible map from the 256 byte values to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def find_bpe_file() -> Path:
    """Path of CLIP's BPE merges file inside the installed ``open_clip`` package."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / BPE_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{BPE_FILE} not found: install open_clip_torch (`pip install --no-deps open_clip_torch`)"
        " to build the offline CLIP tokenizer"
    )


def clip_vocab_and_merges(
    bpe_file: Path | None = None,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary (token → id) and merge rules (pairs) from the BPE file."""
    path = bpe_file or find_bpe_file()
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [(a, b) for a, b in (line.split() for line in lines[1 : NUM_MERGES + 1])]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != VOCAB_SIZE:
        raise ValueError(f"{path} gives {len(tokens)} tokens, expected {VOCAB_SIZE}")
    return {t: i for i, t in enumerate(tokens)}, merges


def offline_clip_tokenizer(pad_token: str = "<|endoftext|>") -> Any:
    """A ``transformers.CLIPTokenizer`` equal to OpenAI CLIP's, built without the hub.

    ``pad_token`` is ``"<|endoftext|>"`` as CLIP ViT-L/14; SD 2.x uses ``"!"``.
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    # transformers 5 ignores vocab_file=/merges_file=: pass the data itself (§10).
    tokenizer: Any = CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad_token)  # type: ignore[arg-type]
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer
