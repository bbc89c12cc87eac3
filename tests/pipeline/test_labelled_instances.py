"""One reference per instance (``--unit instance``, issue 23): keys stable and distinct from
the class keys, the pipeline and the CLI flag, on a small labelme folder with tiny models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fossil.cli import main
from fossil.commands import _labelled
from fossil.db.open import open_collection
from fossil.ingest.labelled import UNITS
from fossil.ingest.labelled_refs import item_key
from fossil.pipeline.ingest_config import StoreAddress
from fossil.pipeline.labelled import DEFAULT_UNIT, ingest_labelled, read_labelled_corpus
from tests.ingest.conftest import FakeModels
from tests.ingest.labelled_files import labelme_json, photo, rectangle


def write_labelme(root: Path) -> Path:
    """Two photos: 2 persons (one of two grouped shapes) and a car; 1 person and 2 cars."""
    shapes = [
        {**rectangle("person", 0, 0, 7, 7), "group_id": 1},
        {**rectangle("person", 16, 0, 23, 7), "group_id": 1},
        rectangle("person", 0, 16, 7, 23),
        rectangle("car", 20, 20, 31, 31),
    ]
    labelme_json(root / "a.json", shapes, image=photo(32, 32, seed=1))  # FakeModels: 32 px
    shapes = [
        rectangle("person", 0, 0, 15, 15),
        rectangle("car", 20, 0, 27, 7),
        rectangle("car", 20, 20, 31, 31),
    ]
    labelme_json(root / "b.json", shapes, image=photo(32, 32, seed=2))
    return root


def _points(store: Path) -> dict[str, dict]:
    collection = open_collection(store)
    try:
        return {p.id: p.payload for p in collection.refs.iter_points()}
    finally:
        collection.close()


def test_instance_keys_are_stable_and_distinct_from_the_class_key() -> None:
    class_key = item_key("labelled:x", "set/a.json", "person")
    old = hashlib.sha256("\x00".join(("labelled", "labelled:x", "set/a.json", "person")).encode())
    assert class_key == old.hexdigest()  # stores written before instances keep their keys
    keys = {item_key("labelled:x", "set/a.json", "person", i) for i in ("shape 0", "group 1")}
    assert len(keys) == 2 and class_key not in keys
    assert item_key("labelled:x", "set/a.json", "person", "shape 0") in keys  # stable
    assert item_key("labelled:x", "set/a.json", "car", "shape 0") not in keys


def test_instances_ingest_one_reference_each_and_reruns_add_nothing(tmp_path: Path) -> None:
    root = write_labelme(tmp_path / "set")
    labelled = read_labelled_corpus(root, name="inst", unit="instance")
    assert labelled.unit == "instance" and len(labelled.items) == 6
    instances = sorted((i.photo.key, i.concept, i.instance) for i in labelled.items.values())
    assert instances[:3] == [
        ("set/a.json", "car", "shape 3"),
        ("set/a.json", "person", "group 1"),
        ("set/a.json", "person", "shape 2"),
    ]
    store = StoreAddress(tmp_path / "store")
    summary = ingest_labelled(store, labelled, FakeModels())
    assert summary.stats.references == 6
    first = _points(tmp_path / "store")
    assert sorted(p["labelled_instance"] for p in first.values()) == [
        "group 1", "shape 0", "shape 1", "shape 2", "shape 2", "shape 3",
    ]  # fmt: skip
    grouped = next(p for p in first.values() if p["labelled_instance"] == "group 1")
    assert grouped["mask_area"] == pytest.approx(128 / 1024)  # both shapes of the group
    again = ingest_labelled(
        store, read_labelled_corpus(root, name="inst", unit="instance"), FakeModels()
    )
    assert again.stats.references == 0 and _points(tmp_path / "store") == first
    # the same set per class under another name: 4 (photo, class) references, other ids
    by_class = read_labelled_corpus(root, name="cls")
    assert by_class.unit == DEFAULT_UNIT == "class" and len(by_class.items) == 4
    ingest_labelled(store, by_class, FakeModels())
    both = _points(tmp_path / "store")
    assert len(both) == 10 and set(first) < set(both)
    assert all("labelled_instance" not in both[i] for i in set(both) - set(first))


def test_cli_unit_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _labelled.UNITS == UNITS and _labelled.DEFAULT_UNIT == DEFAULT_UNIT
    root = write_labelme(tmp_path / "set")
    store = tmp_path / "store"
    argv = ["ingest", "--labelled", str(root), "--store", str(store), "--models", "tiny"]
    assert main([*argv, "--unit", "instance", "--no-progress"]) == 0
    assert "6 (photo, instance) references" in capsys.readouterr().out
    payloads = _points(store).values()
    assert len(payloads) == 6 and all("labelled_instance" in p for p in payloads)
    assert main([*argv, "--unit", "instance", "--no-progress"]) == 0  # rerun adds nothing
    assert len(_points(store)) == 6
    with pytest.raises(SystemExit):
        main([*argv, "--unit", "object"])
    assert "invalid choice: 'object'" in capsys.readouterr().err
    assert main(["ingest", "x.txt", "--unit", "instance", "--store", str(store)]) == 1
    assert "--unit only apply to --labelled" in capsys.readouterr().err
