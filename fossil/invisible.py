"""Invisible characters: the one definition that captions and concepts share.

C0/C1 control characters (NUL, BEL, ESC, CSI, ...), the bidi embeddings, overrides, isolates
and marks, and the byte-order mark (zero-width no-break space) do not show, yet they make
``"dog\\x00"`` a text of its own, and ESC or CSI printed raw drive the user's terminal.
Captions are bulk data: the catalog and the corpus readers replace these characters by
spaces (:func:`strip_invisible`).  Concepts are typed by a user who is there to fix them:
:mod:`fossil.concepts` refuses them, naming the first one (:func:`first_invisible`).

This module imports nothing of fossil's, so every layer may use it.
"""

from __future__ import annotations

import re
import unicodedata

# C0/C1 controls, bidi embeddings/overrides (U+202A-E), isolates (U+2066-9), marks
# (U+200E/F), byte-order mark / zero-width no-break space (U+FEFF)
INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\ufeff]")


def strip_invisible(text: str) -> str:
    """``text`` with control, bidi and byte-order-mark characters replaced by spaces."""
    return INVISIBLE.sub(" ", text)


def first_invisible(text: str) -> str | None:
    """The first invisible character of ``text`` described for a message (``"U+001B (a
    control character)"``), or None when it has none."""
    found = INVISIBLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\ufeff":
        kind = "a byte-order mark"
    elif unicodedata.category(char) == "Cc":
        kind = "a control character"
    else:
        kind = "a bidi control"
    return f"U+{ord(char):04X} ({kind})"
