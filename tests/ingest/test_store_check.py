"""``fossil store check [--repair]`` on stores damaged in known ways, compared with a clean
store built from the same captions (issue 16, defects 2, 4, 5, 6).  Fake models: ingest is
deterministic, so a repaired store must end where a clean one is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.db.check import check_store
from fossil.db.edge import EdgeStore, visual_file
from tests.ingest.conftest import load_fake_models

CAPTIONS = [
    "Nothing to see here" if i % 7 == 0 else f"A dog number {i} near a tree" for i in range(24)
]


@pytest.fixture(autouse=True)
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ingest_run, "model_loaders", lambda profile, devices, workers: [load_fake_models] * workers
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    parsed = json.loads(out) if "--json" in argv and out.strip()[:1] in ("{", "[") else out
    return code, parsed, err


def ingest(capsys: pytest.CaptureFixture[str], store: Path, source: Path) -> tuple[int, Any, str]:
    return run(capsys, "ingest", str(source), "--store", str(store), "--no-progress", "--json")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "captions.txt"
    path.write_text("\n".join(CAPTIONS) + "\n")
    return path


@pytest.fixture
def clean(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    store = tmp_path / "clean"
    assert ingest(capsys, store, source)[0] == 0
    return state(store)


def state(store: Path) -> dict[str, Any]:
    """What a store holds: its points (with VREs), catalogued references, caption states."""
    engine = create_engine(f"sqlite:///{store / 'catalog.sqlite'}")
    with engine.connect() as conn:
        references = sorted(
            conn.execute(
                text(
                    "SELECT r.point_id, c.text, r.noun, r.lemma, r.thumbnail FROM reference r "
                    "JOIN caption c ON c.id = r.caption_id"
                )
            ).all()
        )
        captions = dict(conn.execute(text("SELECT text, status FROM caption")).all())
    engine.dispose()
    refs = EdgeStore(store / "qdrant")
    try:
        ids = sorted(p.id for p in refs.iter_points())
        visual = refs.fetch_visual(ids)
        fallbacks = refs.row_fallbacks
    finally:
        refs.close()
    thumbs = sorted(p.name for p in (store / "thumbnails").rglob("*.webp"))
    return {
        "ids": ids,
        "visual": visual,
        "fallbacks": fallbacks,
        "references": references,
        "captions": captions,
        "thumbnails": thumbs,
    }


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["ids"] == want["ids"] and got["references"] == want["references"]
    assert got["captions"] == want["captions"] and got["thumbnails"] == want["thumbnails"]
    np.testing.assert_array_equal(got["visual"], want["visual"])
    assert got["fallbacks"] == 0


def built(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    store = tmp_path / "store"
    assert ingest(capsys, store, source)[0] == 0
    return store


def check(capsys: pytest.CaptureFixture[str], store: Path, *flags: str) -> tuple[int, dict]:
    code, report, err = run(capsys, "store", "check", "--store", str(store), "--json", *flags)
    assert "Traceback" not in err
    return code, report


def test_a_clean_store_is_healthy(tmp_path, source, clean, capsys) -> None:
    store = built(tmp_path, source, capsys)
    code, report = check(capsys, store)
    assert code == 0 and report["found"]["healthy"]
    counts = report["found"]["counts"]
    assert counts["references"] == counts["points"] == len(clean["ids"]) > 0
    assert counts["points_missing"] == counts["rows_failed"] == counts["thumbnails_orphaned"] == 0


def test_vectors_deleted_are_refused_then_repaired_and_regenerated(
    tmp_path, source, clean, capsys
) -> None:
    store = built(tmp_path, source, capsys)
    shutil.rmtree(store / "qdrant")
    for argv in (["info", "--store", str(store)], ["corpus", "list", "--store", str(store)]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "store check --repair" in err and "Traceback" not in err
    code, _, err = ingest(capsys, store, source)  # used to write 0 references, "done"
    assert code == 1 and "holds no points but the catalog lists" in err
    code, report = check(capsys, store)
    assert code == 1 and report["found"]["notes"]
    code, report = check(capsys, store, "--repair")
    found = report["found"]
    assert code == 0 and found["repairs"]["references_uncatalogued"] == len(clean["ids"])
    assert found["repairs"]["captions_pending"] == sum(1 for c in CAPTIONS if "dog" in c)
    code, summary, _ = ingest(capsys, store, source)
    assert code == 0 and summary["references_written"] == len(clean["ids"])
    assert_same(state(store), clean)


def test_a_damaged_row_file_is_rebuilt_from_qdrant(tmp_path, source, clean, capsys) -> None:
    store = built(tmp_path, source, capsys)
    path = visual_file(store / "qdrant")
    data = bytearray(path.read_bytes())
    data[68:72] = bytes(b ^ 0xFF for b in data[68:72])  # flipped bytes in the first row
    row = (len(data) - 64) // len(clean["ids"])
    path.write_bytes(bytes(data[: len(data) - row // 2]))  # and a partial copy: last row torn
    code, report = check(capsys, store)
    counts = report["found"]["counts"]
    assert code == 1 and counts["rows_failed"] == 1 and counts["rows_unnamed"] == 1
    assert check(capsys, store, "--repair")[0] == 0
    assert_same(state(store), clean)
    path.write_bytes(b"x" * 200)  # not a row file at all: every command names the repair
    code, _, err = run(capsys, "info", "--store", str(store))
    assert code == 1 and "bad header" in err and "store check --repair" in err
    code, report = check(capsys, store, "--repair")
    assert code == 0 and report["found"]["repairs"]["rows_rebuilt"] == len(clean["ids"])
    assert_same(state(store), clean)


@pytest.mark.parametrize("damage", ["deleted", "empty", "half"])
def test_a_lost_catalog_is_refused_then_rebuilt_from_the_payloads(
    tmp_path, source, clean, capsys, damage: str
) -> None:
    store = built(tmp_path, source, capsys)
    catalog = store / "catalog.sqlite"
    if damage == "deleted":
        catalog.unlink()
    elif damage == "empty":
        catalog.write_bytes(b"")
    else:
        catalog.write_bytes(catalog.read_bytes()[: catalog.stat().st_size // 2])
    code, _, err = run(capsys, "info", "--store", str(store))
    assert code == 1 and "store check --repair" in err and "Traceback" not in err
    if damage != "deleted":
        assert "is not a fossil catalog or is damaged" in err
    code, report = check(capsys, store)
    assert code == 1 and report["found"]["catalog"] != "ok"
    code, report = check(capsys, store, "--repair")
    assert code == 0 and report["found"]["catalog"] == "rebuilt"
    assert report["found"]["repairs"]["catalog_references"] == len(clean["ids"])
    rebuilt = state(store)
    assert rebuilt["references"] == clean["references"]
    # captions without a noun left no point: they come back with the next ingest
    assert set(rebuilt["captions"]) == {c for c in CAPTIONS if "dog" in c}
    code, summary, _ = ingest(capsys, store, source)
    assert code == 0 and summary["references_written"] == 0
    assert_same(state(store), clean)


def test_stray_thumbnails_and_caches_are_dropped(tmp_path, source, clean, capsys) -> None:
    store = built(tmp_path, source, capsys)
    stray = store / "thumbnails" / "zz" / "zz-not-catalogued.webp"  # a killed worker's
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"RIFF")
    (store / "cache" / "prototypes").mkdir(parents=True)
    (store / "cache" / "prototypes" / "entry.npz").write_bytes(b"stale")
    lost = sorted((store / "thumbnails").rglob("*.webp"))[0]
    lost.unlink()
    code, report = check(capsys, store)
    counts = report["found"]["counts"]
    assert code == 1 and counts["thumbnails_orphaned"] == 1 and counts["thumbnails_missing"] == 1
    code, report = check(capsys, store, "--repair")
    assert code == 0 and not stray.exists() and not (store / "cache").exists()
    repairs = report["found"]["repairs"]
    assert repairs["thumbnails_deleted"] == repairs["thumbnails_uncatalogued"] == 1


def test_points_lost_in_part_are_named_by_info_and_repaired(
    tmp_path, source, clean, capsys
) -> None:
    store = built(tmp_path, source, capsys)
    refs = EdgeStore(store / "qdrant")
    refs.delete(clean["ids"][:3])
    refs.close()
    code, out, _ = run(capsys, "info", "--store", str(store))
    assert code == 0 and "store check --repair" in out and "rerun `fossil ingest`" not in out
    code, report = check(capsys, store, "--repair")
    repairs = report["found"]["repairs"]
    assert code == 0 and repairs["references_uncatalogued"] == 3
    code, summary, _ = ingest(capsys, store, source)  # exactly the captions of the lost points
    assert code == 0 and summary["captions_processed"] == repairs["captions_pending"] > 0
    assert_same(state(store), clean)


def empty_the_catalog(store: Path, *, meta: bool = False) -> None:
    """Delete every row of the catalog's tables (the tables stay), as a user with sqlite3
    would, or as a ``--repair`` killed between making the catalog and filling it left it
    (``meta``: collection_meta too)."""
    engine = create_engine(f"sqlite:///{store / 'catalog.sqlite'}")
    tables = ["reference", "caption_corpus", "caption", "corpus"]
    with engine.begin() as conn:
        for table in [*tables, *(["collection_meta"] if meta else [])]:
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.mark.parametrize("meta", [False, True], ids=["rows", "rows-and-meta"])
def test_a_catalog_emptied_of_its_rows_is_refused_then_rebuilt_not_deleted(
    tmp_path, source, clean, capsys, meta: bool
) -> None:
    """Issue 25, failure 1: repair used to delete every point (``points_deleted 63``)."""
    store = built(tmp_path, source, capsys)
    empty_the_catalog(store, meta=meta)
    for argv in (["info", "--store", str(store)], ["corpus", "list", "--store", str(store)]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "store check --repair" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    code, _, err = ingest(capsys, store, source)  # would register the captions anew
    assert code == 1 and "store check --repair" in err
    assert check(capsys, store)[0] == 1
    code, report = check(capsys, store, "--repair")
    found = report["found"]
    assert code == 0 and "points_deleted" not in found["repairs"], found
    assert found["catalog"] == "rebuilt"
    assert found["repairs"]["catalog_references"] == len(clean["ids"])
    rebuilt = state(store)
    assert rebuilt["ids"] == clean["ids"] and rebuilt["references"] == clean["references"]
    assert rebuilt["thumbnails"] == clean["thumbnails"]
    code, summary, _ = ingest(capsys, store, source)
    assert code == 0 and summary["references_written"] == 0
    assert_same(state(store), clean)


def test_the_meta_and_the_rebuilt_catalog_are_written_in_one_transaction(
    tmp_path, source, clean, capsys, monkeypatch
) -> None:
    """A repair killed while it rebuilds leaves no catalog that has a meta but no rows: the
    meta write and the rebuild commit together (issue 25, failure 1)."""
    store = built(tmp_path, source, capsys)
    (store / "catalog.sqlite").unlink()
    real = EdgeStore.iter_payloads

    def killed(self: EdgeStore, *args: Any, **kwargs: Any) -> Any:
        for i, point in enumerate(real(self, *args, **kwargs)):
            if i == 5:
                raise KeyboardInterrupt  # as SIGINT would, partway through the points
            yield point

    monkeypatch.setattr(EdgeStore, "iter_payloads", killed)
    with pytest.raises(KeyboardInterrupt):
        check_store(store, repair=True)
    monkeypatch.setattr(EdgeStore, "iter_payloads", real)
    engine = create_engine(f"sqlite:///{store / 'catalog.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM collection_meta")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM caption")).scalar() == 0
    engine.dispose()
    code, report = check(capsys, store, "--repair")
    assert code == 0 and "points_deleted" not in report["found"]["repairs"]
    assert state(store)["references"] == clean["references"]


def copy_catalog(store: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for part in store.glob("catalog.sqlite*"):
        shutil.copy2(part, to / part.name)


def restore_catalog(backup: Path, store: Path) -> None:
    for part in store.glob("catalog.sqlite*"):
        part.unlink()
    for part in backup.glob("catalog.sqlite*"):
        shutil.copy2(part, store / part.name)


def test_an_older_catalog_restored_gets_the_newer_references_from_their_payloads(
    tmp_path, source, capsys
) -> None:
    """Issue 25, failure 2: repair used to delete the references the old catalog lacked."""
    newer = tmp_path / "newer.txt"
    newer.write_text(
        "A cat number 1 on a car\nA cat number 2 on a car\n" + CAPTIONS[1] + "\n"
    )  # two new captions, and one the first corpus holds already
    store = tmp_path / "store"
    assert ingest(capsys, store, source)[0] == 0
    copy_catalog(store, tmp_path / "backup")
    assert ingest(capsys, store, newer)[0] == 0
    want = state(store)
    restore_catalog(tmp_path / "backup", store)
    code, report = check(capsys, store)
    assert code == 1 and report["found"]["counts"]["points_uncatalogued"] == 4  # cat, car × 2
    code, report = check(capsys, store, "--repair")
    repairs = report["found"]["repairs"]
    assert code == 0 and "points_deleted" not in repairs and "thumbnails_deleted" not in repairs
    assert repairs["references_recatalogued"] == 4
    got = state(store)
    assert got["ids"] == want["ids"] and got["references"] == want["references"]
    assert got["thumbnails"] == want["thumbnails"]
    code, corpora, _ = run(capsys, "corpus", "list", "--store", str(store), "--json")
    by_name = {c["name"]: c for c in corpora}
    assert by_name["newer"]["references"] == 4 and by_name["newer"]["captions"] == 2
    for corpus_file in (source, newer):  # nothing is generated again
        code, summary, _ = ingest(capsys, store, corpus_file)
        assert code == 0 and summary["references_written"] == 0
    code, corpora, _ = run(capsys, "corpus", "list", "--store", str(store), "--json")
    assert {c["name"]: c["captions"] for c in corpora}["newer"] == 3


def test_a_corpus_of_shared_captions_is_named_by_the_rebuild_and_comes_back_by_ingest(
    tmp_path, source, capsys
) -> None:
    """Issue 25, partial 1: a corpus whose captions another corpus registered first names
    no point, so a rebuild from the payloads cannot know it; the repair says so and how to
    bring it back (add its file again: nothing is generated)."""
    shared = tmp_path / "shared.txt"
    shared.write_text("\n".join(CAPTIONS[1:4]) + "\n")
    store = tmp_path / "store"
    assert ingest(capsys, store, source)[0] == 0
    assert ingest(capsys, store, shared)[0] == 0
    (store / "catalog.sqlite").unlink()
    code, report = check(capsys, store, "--repair")
    assert code == 0
    notes = " ".join(report["found"]["notes"])
    assert "registered first" in notes and "fossil ingest" in notes
    code, corpora, _ = run(capsys, "corpus", "list", "--store", str(store), "--json")
    assert [c["name"] for c in corpora] == ["captions"]
    code, summary, _ = ingest(capsys, store, shared)
    assert code == 0 and summary["references_written"] == 0
    code, corpora, _ = run(capsys, "corpus", "list", "--store", str(store), "--json")
    assert {c["name"]: c["captions"] for c in corpora}["shared"] == 3
