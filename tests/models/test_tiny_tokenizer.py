"""The tiny profile's tokenizer: CLIP's layout with a small learned BPE, no open_clip needed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from typing import Any

from fossil.models.tokenizer import (
    SPECIAL_TOKENS,
    TINY_MERGES,
    clip_layout_vocab,
    learn_bpe,
    word_symbols,
)


def test_learn_bpe_merges_the_most_frequent_pair_first() -> None:
    words = Counter(word_symbols("low low low lower lowest newer newer wider"))
    # "lo" ×5; then "er</w>" and "we" ×4 tie: the smaller pair wins; then "low</w>" ×3 beats
    # "w"+"er</w>" ×3 on the same rule
    assert learn_bpe(words, 3) == [("l", "o"), ("e", "r</w>"), ("lo", "w</w>")]
    assert learn_bpe(words, 0) == []
    assert len(learn_bpe(words, 1000)) < 1000  # stops when no pair occurs twice


def test_word_symbols_follow_clip_pre_tokenisation() -> None:
    assert word_symbols("A Dog, 2 dogs!") == [
        ("a</w>",),
        ("d", "o", "g</w>"),
        ("d", "o", "g", "s</w>"),
    ]


def test_layout_and_specials(tiny_tokenizer: Any) -> None:
    vocab = tiny_tokenizer.get_vocab()
    assert 514 < len(vocab) <= 512 + TINY_MERGES + 2
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    assert [vocab[t] for t in SPECIAL_TOKENS] == [len(vocab) - 2, len(vocab) - 1]
    assert clip_layout_vocab([("d", "og</w>")])["dog</w>"] == 512
    ids = tiny_tokenizer("A photo of a Traffic light, and a hot-dog! Zebra 42").input_ids
    assert ids[0] == tiny_tokenizer.bos_token_id and ids[-1] == tiny_tokenizer.eos_token_id
    tokens = tiny_tokenizer.convert_ids_to_tokens(ids)
    assert "traffic</w>" in tokens and "light</w>" in tokens  # class names are whole tokens
    assert "".join(tokens[1:-1]).replace("</w>", " ").split() == [
        "a", "photo", "of", "a", "traffic", "light", ",", "and", "a", "hot", "-", "dog", "!",
        "zebra", "4", "2",
    ]  # fmt: skip
    assert tiny_tokenizer.model_max_length == 77
    padded = tiny_tokenizer("a dog", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == tiny_tokenizer.pad_token_id


def test_same_in_every_process_and_built_without_open_clip() -> None:
    """Learned merges tie-break deterministically (no hash order); nothing imports or finds
    open_clip (it is blocked here), so `pip install fossil-ovss` suffices for --models tiny."""
    script = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'open_clip':\n"
        "            raise ImportError('open_clip is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from fossil.models.loading import load_text_encoder\n"
        "encoder = load_text_encoder('tiny', device='cpu')\n"
        "vocab = encoder.tokenizer.get_vocab()\n"
        "print(len(vocab), sum(i * len(t) for t, i in vocab.items()),\n"
        "      encoder.encode(['dog']).shape)\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed, "HF_HUB_OFFLINE": "1"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1, outputs
    (line,) = outputs
    assert line.split()[-1] == "32)"  # encoded: (1, 32)
