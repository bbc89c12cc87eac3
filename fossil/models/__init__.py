"""Model layer (design §3): loading by hub id or local path, the Stable Diffusion generator, DAAM
heat maps, dense visual encoders, text encoders with the retrieval embedding, the noun parser.

Submodules import their heavy libraries (torch, diffusers, transformers, spaCy) themselves;
import them directly, e.g. ``from fossil.models.loading import load_models``.
"""
