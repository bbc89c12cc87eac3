"""The models a command runs with, for a collection: built lazily, checked against it.

A collection records the models it was built with (``collection_meta``).  Reading it needs
the same text encoder (for retrieval) and dense encoder (for the visual references) as the
ones that wrote it, so by default a command uses exactly those; a given ``profile`` replaces
them and is refused when it does not match (:func:`check_dense_encoder`, and the text
encoder's check where the query engine is built).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fossil.config import EvalConfig
from fossil.errors import naming

if TYPE_CHECKING:
    from fossil.db.protocols import Collection
    from fossil.models.loading import ModelBundle, ModelProfile


def collection_models(
    command: str,
    collection: Collection | None,
    *,
    profile: str | ModelProfile | None = None,
    device: str | None = None,
    extend: bool = False,
    sizes: EvalConfig | None = None,
) -> ModelBundle:
    """The models ``command`` needs (``fossil.models.loading.COMMAND_ROLES``, plus those of
    ``extend``-ing a collection), each built on first use: ``profile``'s when given, else
    those ``collection`` records, else the paper's; the dense and keys encoders at the input
    sides of ``sizes`` (default: each backbone's own)."""
    from fossil.models.loading import command_roles, load_models
    from fossil.pipeline.ingest import meta_profile

    sides = sizes if sizes is not None else EvalConfig()
    chosen: str | ModelProfile = profile or "paper"
    if profile is None and collection is not None:
        chosen = meta_profile(collection.meta)
    return load_models(
        chosen,
        device=device,
        roles=command_roles(command, extend=extend),
        dense_size=sides.dense_size,
        key_size=sides.key_size,
    )


def check_dense_encoder(collection: Collection, models: ModelBundle) -> None:
    """The dense encoder must be the one the collection's VREs come from (name and dim)."""
    meta, dense = collection.meta, models.dense
    if dense.name != meta.dense_encoder or int(dense.dim) != meta.visual_dim:
        raise naming(
            ValueError(
                f"dense encoder {dense.name!r} (dim {dense.dim}) does not match the "
                f"collection, built with {meta.dense_encoder!r} (dim {meta.visual_dim}); use "
                "the models it was built with (no profile, or the profile it was built with)"
            ),
            "profile",
        )
