"""CLIP tokenizers built offline (design §10).

The real pipelines bring their own tokenizer.  Two are built here without the hub:

- :func:`tiny_clip_tokenizer` — the tiny profile's: CLIP's layout and pre-tokenisation with a
  small byte-level BPE learned, deterministically, from the benchmark class names.  It needs
  nothing beyond ``transformers``, so ``pip install fossil-ovss`` is enough for ``--models
  tiny``.
- :func:`offline_clip_tokenizer` — OpenAI CLIP's own, from the BPE file shipped inside
  ``open_clip_torch`` (an optional install).  Ids equal OpenAI CLIP's: 256 byte characters,
  the same with ``</w>``, the 48,894 merges joined, then ``<|startoftext|>`` and
  ``<|endoftext|>`` (49,408 entries).  ``open_clip`` itself is never imported (it pulls
  torchvision).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # as open_clip's SimpleTokenizer
VOCAB_SIZE = 49408
MAX_LENGTH = 77
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
TINY_MERGES = 1024  # at most; the tiny vocabulary is 512 + merges + 2 tokens
# words of captions and prompts beside the benchmark class names (the tiny BPE's corpus)
TINY_EXTRA_WORDS = (
    "a an the photo picture image of on in at with and near two three red blue green small "
    "large big old young wooden there is are dog dogs cat cats sofa car traffic light"
)


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
        " to build OpenAI CLIP's tokenizer offline (the tiny profile does not need it)"
    )


def clip_layout_vocab(merges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary layout for ``merges``: the 256 byte characters, the same with
    ``</w>``, each merge joined (first occurrence), then the two special tokens."""
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m) for m in merges] + list(SPECIAL_TOKENS)
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def clip_vocab_and_merges(
    bpe_file: Path | None = None,
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary (token → id) and merge rules (pairs) from the BPE file."""
    path = bpe_file or find_bpe_file()
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [(a, b) for a, b in (line.split() for line in lines[1 : NUM_MERGES + 1])]
    vocab = clip_layout_vocab(merges)
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"{path} gives {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return vocab, merges


def offline_clip_tokenizer(pad_token: str = "<|endoftext|>") -> Any:
    """A ``transformers.CLIPTokenizer`` equal to OpenAI CLIP's, built without the hub.

    ``pad_token`` is ``"<|endoftext|>"`` as CLIP ViT-L/14; SD 2.x uses ``"!"``.
    """
    vocab, merges = clip_vocab_and_merges()
    return _clip_tokenizer(vocab, merges, pad_token)


def word_symbols(text: str) -> list[tuple[str, ...]]:
    """CLIP's pre-tokenisation of ``text`` for learning merges: lowercased letter runs, each
    as its byte characters with ``</w>`` on the last (digits and punctuation are single
    symbols at tokenisation time and teach no merge)."""
    table = bytes_to_unicode()
    words = []
    for word in re.findall(r"[^\W\d_]+", " ".join(text.split()).lower()):
        chars = [table[b] for b in word.encode("utf-8")]
        words.append((*chars[:-1], chars[-1] + "</w>"))
    return words


def learn_bpe(words: Mapping[tuple[str, ...], int], num_merges: int) -> list[tuple[str, str]]:
    """Byte-pair merges learned from ``words`` (symbol tuple → count): each step merges the
    most frequent adjacent pair, ties broken by the pair's order, so the result is the same in
    every process.  Stops after ``num_merges`` or when no pair occurs twice."""
    vocab = dict(words)
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in vocab.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        vocab = {_merge(symbols, best): count for symbols, count in vocab.items()}
    return merges


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def tiny_corpus() -> str:
    """The text the tiny BPE learns from: every benchmark class name and a few caption words."""
    data = json.loads(
        resources.files("fossil").joinpath("data/benchmark_classes.json").read_text("utf-8")
    )
    names = [name for spec in data.values() for name in spec["classes"]]
    return " ".join([*names, TINY_EXTRA_WORDS])


def tiny_clip_tokenizer(pad_token: str = "<|endoftext|>") -> Any:
    """The tiny profile's ``transformers.CLIPTokenizer``: CLIP's normalisation,
    pre-tokenisation, ``</w>`` suffix and special tokens with a small BPE (≤ 512 + 1024 + 2
    tokens) learned from :func:`tiny_corpus`.  Any text tokenises (unseen words fall back to
    byte characters); built offline, identical in every process."""
    merges = learn_bpe(Counter(word_symbols(tiny_corpus())), TINY_MERGES)
    return _clip_tokenizer(clip_layout_vocab(merges), merges, pad_token)


def _clip_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], pad_token: str) -> Any:
    from transformers import CLIPTokenizer

    # transformers 5 ignores vocab_file=/merges_file=: pass the data itself (design §10).
    tokenizer: Any = CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad_token)  # type: ignore[arg-type]
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer
