"""``fossil eval --server --every M``'s loop (fossil.eval.live): when it runs, when it ends,
and the log it writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fossil.eval.live import Growth, LiveLog, follow_growth


def test_runs_each_time_every_references_arrived_and_once_at_the_end(tmp_path: Path) -> None:
    # what the server says at each look: size, ingest still active
    looks = iter([(10, True), (10, True), (14, True), (25, True), (31, True), (33, False),
                  (33, False)])  # fmt: skip
    sizes: list[int] = []
    state = {"size": 0}

    def look() -> Growth:
        size, active = next(looks)
        state["size"] = size
        return Growth(size, active)

    def run_once(number: int) -> dict:
        sizes.append(state["size"])
        return {"run": number, "references": state["size"], "miou": 0.01 * state["size"]}

    slept: list[float] = []
    log = LiveLog(tmp_path / "live.csv")
    lines = follow_growth(look, run_once, log, 10, poll_s=2.0, sleep=slept.append)
    assert sizes == [10, 25, 33]  # 14 is not 10 more; 31 is not 10 more than 25; 33 is final
    assert [line["run"] for line in lines] == [1, 2, 3]
    with log.path.open() as rows:
        written = list(csv.DictReader(rows))
    assert [int(r["references"]) for r in written] == [10, 25, 33]
    assert float(written[2]["miou"]) == pytest.approx(0.33)
    assert slept == [2.0, 2.0, 2.0]


def test_json_lines_log_and_bad_every(tmp_path: Path) -> None:
    log = LiveLog(tmp_path / "live.jsonl")
    lines = follow_growth(
        lambda: Growth(5, False), lambda n: {"run": n, "references": 5, "miou": 0.5}, log, 3
    )
    assert len(lines) == 1
    assert json.loads(log.path.read_text().splitlines()[0])["references"] == 5
    with pytest.raises(ValueError, match=r"every \(0\) must be >= 1"):
        follow_growth(lambda: Growth(0, False), lambda n: {}, log, 0)
