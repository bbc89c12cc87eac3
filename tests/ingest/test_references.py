"""References of a batch on fake models: counts, point ids, VRE/TRE, thumbnails, failures."""

from __future__ import annotations

import numpy as np
import pytest

from fossil.db.catalog import caption_hash
from fossil.ingest.references import collection_meta, process_batch
from fossil.ingest.thumbnails import read_thumbnail
from fossil.models.text import retrieval_embeddings
from fossil.records import point_id
from fossil.segment.pooling import region_pool
from tests.ingest.conftest import CAPTIONS, FAKE_META, FakeModels, make_jobs, noun_mask


def test_process_batch_references_and_counts(models: FakeModels, tmp_path) -> None:
    jobs = make_jobs(CAPTIONS)
    result = process_batch(models, jobs, template_weight=0.9, thumbnail_root=tmp_path)
    assert models.generator.calls == [4]  # one batched call, the noun-less caption left out
    assert result.done == [1, 2, 3, 4, 5] and result.failed == []
    s = result.stats
    assert (s.captions, s.without_nouns, s.references) == (5, 1, 8)
    assert (s.empty_masks, s.not_located, s.repeated_nouns) == (1, 1, 1)
    by_caption: dict[int, list[str]] = {}
    for row in result.rows:
        by_caption.setdefault(row.caption_id, []).append(row.noun)
    assert by_caption == {
        1: ["dog", "ball", "grass"],
        3: ["cat"],
        4: ["house", "sky"],
        5: ["dog", "car"],
    }
    # point ids: (caption hash, index of the noun in the parsed list, generator fingerprint)
    expected = point_id(caption_hash(CAPTIONS[4]), 2, "fake-generator-v1")  # "car" is noun 2
    assert result.rows[-1].point_id == expected == result.points[-1].id
    point = result.points[0]
    image = models.generator.generate([CAPTIONS[0]], [[]])[0].image
    vre = region_pool(models.dense.features([image])[0], noun_mask("dog")[None])[0]
    np.testing.assert_allclose(point.visual, vre, rtol=1e-6)
    tre = retrieval_embeddings(models.text, ["dog"], [CAPTIONS[0]], template_weight=0.9)[0]
    np.testing.assert_allclose(point.text, tre, rtol=1e-6)
    assert point.payload == {
        "caption_id": 1, "noun": "dog", "noun_lemma": "dog", "corpus": "c",
        "mask_area": pytest.approx(noun_mask("dog").mean()), "caption": CAPTIONS[0],
    }  # fmt: skip
    thumb, alpha = read_thumbnail(tmp_path / result.rows[0].thumbnail)
    assert thumb.shape == (128, 128, 3)
    inside = np.kron(noun_mask("dog"), np.ones((4, 4), bool))  # the mask at 128 px
    assert alpha[inside].mean() > 0.9 and alpha[~inside].mean() < 0.1


def test_one_bad_caption_fails_alone(models: FakeModels) -> None:
    jobs = make_jobs(["A dog", "A boom box near a tree", "A cat"])
    result = process_batch(models, jobs)
    assert result.done == [1, 3] and [cid for cid, _ in result.failed] == [2]
    assert "RuntimeError: generator exploded" in result.failed[0][1]
    assert result.stats.failures == 1 and result.stats.references == 2
    assert models.generator.calls == [3, 1, 1, 1]  # batch, then caption by caption


def test_collection_meta_from_models(models: FakeModels) -> None:
    assert collection_meta(models, 1) == FAKE_META
