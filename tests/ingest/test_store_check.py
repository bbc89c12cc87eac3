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
    parsed = json.loads(out) if "--json" in argv and out.strip().startswith("{") else out
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
