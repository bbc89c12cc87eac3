"""Held-out scenes: the ADE20K layout fossil's eval reader opens, with the concept names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fossil.demo.scenes import held_out_scenes, read_class_names, write_scenes
from fossil.demo.vocabulary import CONCEPT_NAMES, VOCABULARY


def test_scenes_cover_the_vocabulary_deterministically() -> None:
    scenes = held_out_scenes(8, seed=1, size=64)
    again = held_out_scenes(8, seed=1, size=64)
    for a, b in zip(scenes, again, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
    assert all(2 <= len(s.materials) <= 4 for s in scenes)
    assert {m for s in scenes for m in s.materials} == set(range(len(VOCABULARY)))


def test_written_layout_reads_back_through_the_ade20k_reader(tmp_path: Path) -> None:
    from fossil.eval.datasets import open_dataset

    written = write_scenes(tmp_path, 5, seed=2, size=64)
    assert written.class_names == CONCEPT_NAMES == read_class_names(tmp_path)
    dataset = open_dataset("ade20k", tmp_path)
    assert [s.name for s in dataset] == list(written.names)
    scenes = held_out_scenes(5, seed=2, size=64)
    for sample, scene in zip(dataset, scenes, strict=True):
        label = dataset.load_label(sample)  # reduce_zero_label: file value i + 1 → i
        np.testing.assert_array_equal(label, scene.labels)
        image = dataset.load_image(sample)
        assert image.shape == (64, 64, 3)
        assert np.abs(image.astype(int) - scene.image).mean() < 4  # JPEG quality 98, 4:4:4


def test_refuses_to_mix_worlds(tmp_path: Path) -> None:
    write_scenes(tmp_path, 2, size=32)
    with pytest.raises(FileExistsError, match="not empty"):
        write_scenes(tmp_path, 2, size=32)
