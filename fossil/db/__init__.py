"""Reference stores (design §4, §7): the vector store (:mod:`fossil.db.edge` embedded Qdrant Edge,
:mod:`fossil.db.server` qdrant-client), the SQL catalog (:mod:`fossil.db.catalog`) and
:func:`fossil.db.open.open_collection`, which opens both and checks ``collection_meta``.

Kept light: importing :mod:`fossil.db` loads no store library.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_collection"]


def __getattr__(name: str) -> Any:
    if name == "open_collection":
        from fossil.db.open import open_collection

        return open_collection
    raise AttributeError(f"module 'fossil.db' has no attribute {name!r}")
