import json

import numpy as np
from PIL import Image

from fossil.eval.metrics import EvalResult, ImageCounts
from fossil.eval.report import markdown_report, package_versions, results_json, write_reports


def make_result() -> EvalResult:
    zeros = np.zeros(3, np.int64)
    return EvalResult(
        dataset="ade20k",
        class_names=("wall", "bed ", "sky"),
        iou=np.array([0.5, np.nan, 0.25]),
        miou=0.375,
        aacc=0.8,
        num_images=2,
        skipped=(("ADE_val_00000003", "ground truth x.png not found"),),
        counts=ImageCounts(zeros, zeros, zeros),
    )


INFO = {"N": 150, "K": 10, "gamma": 0.5, "tau_foreground": [0.15, 0.2], "models": {"dense": "d"}}


def test_json_report():
    payload = results_json(make_result(), INFO)
    assert payload["miou"] == 0.375 and payload["aacc"] == 0.8
    assert payload["iou"] == {"wall": 0.5, "bed ": None, "sky": 0.25}
    assert payload["skipped"] == [
        {"image": "ADE_val_00000003", "reason": "ground truth x.png not found"}
    ]
    assert payload["config"]["models"] == {"dense": "d"}
    json.dumps(payload, allow_nan=False)  # strict JSON: no NaN


def test_markdown_report():
    text = markdown_report(make_result(), INFO)
    assert "| mIoU (%) | 37.50 |" in text and "| aAcc (%) | 80.00 |" in text
    assert '| "bed " | — |' in text and '| "wall" | 50.00 |' in text
    assert "| gamma | `0.5` |" in text and "| tau_foreground | `[0.15, 0.2]` |" in text
    assert '| models.dense | `"d"` |' in text
    assert "ADE_val_00000003" in text


def test_write_reports_and_chart(tmp_path):
    paths = write_reports(make_result(), tmp_path / "out", INFO)
    assert set(paths) == {"json", "markdown", "chart"}
    with Image.open(paths["chart"]) as chart:
        assert chart.format == "PNG" and chart.size[0] > 100
    assert json.loads(paths["json"].read_text())["miou"] == 0.375


def test_package_versions():
    versions = package_versions(("numpy", "surely-not-installed-package"))
    assert versions == {"numpy": np.__version__}


def test_eval_and_the_demo_record_their_config_through_one_record():
    """``fossil eval`` and ``fossil demo`` write the same config record (issue 28 item 8);
    the keys stay those of before, so a resumed run's fingerprint is unchanged."""
    from argparse import Namespace
    from types import SimpleNamespace

    from fossil.commands.eval import config_info
    from fossil.demo.settings import demo_fossil_config
    from fossil.demo.world import _config_info
    from fossil.eval.report import config_record

    config = demo_fossil_config()
    record = config_record(config)
    assert list(record) == ["N", "K", "gamma", "retrieval", "opencut", "scoring", "eval"]
    assert (record["N"], record["K"]) == (config.retrieval.N, config.retrieval.K)
    assert record["eval"]["crop"] == config.eval.crop  # the demo's own sides
    args = Namespace(dataset="ade20k", store="s", qdrant_url=None, limit=None, data="d")
    evaluated = config_info(args, config, "ade", {"collection_revision": 1})
    named = SimpleNamespace(name="m")
    models = SimpleNamespace(generator=named, text=named, dense=named, keys=named)
    demo = _config_info(config, models, "opencut", [])
    for info in (evaluated, demo):
        assert {k: info[k] for k in record} == record
    assert set(evaluated) == {
        "dataset", "store", "preset", "N", "K", "gamma", "tau_foreground", "tau_background",
        "collection_revision", "retrieval", "opencut", "scoring", "text", "eval", "limit",
        "data", "packages",
    }  # fmt: skip
    assert set(demo) == {
        "synthetic", "run", "N", "K", "gamma", "models", "references_per_class", "retrieval",
        "opencut", "scoring", "eval",
    }  # fmt: skip
