import json

import numpy as np
import pytest
from PIL import Image

from fossil.config import EvalConfig
from fossil.eval.datasets import open_dataset
from fossil.eval.layouts import SPECS
from fossil.eval.runner import RESULTS_FILE, evaluate
from tests.eval.fakes import (
    EXPECTED_AACC,
    EXPECTED_IOU,
    EXPECTED_MIOU,
    IMAGES,
    ColourPredictor,
    class_ids,
    expected_counts,
    stripes_label,
    write_dataset,
)

SMALL = EvalConfig(short_side=72, long_side=512, crop=64, stride=32)  # 48×36 → 96×72, 2×2 windows
INFO = {"N": 70, "K": 10, "gamma": 0.7, "packages": {"numpy": np.__version__}}


def run(dataset, out_dir, predictor=None, **kwargs):
    predictor = predictor or ColourPredictor(dataset.name)
    kwargs.setdefault("eval_config", SMALL)
    kwargs.setdefault("config_info", INFO)
    kwargs.setdefault("progress", False)
    return evaluate(dataset, predictor, out_dir=out_dir, **kwargs)


def check_expected(result, name):
    ids = class_ids(name)
    expected = np.full(len(result.class_names), np.nan)
    for kind, value in EXPECTED_IOU.items():
        expected[ids[kind]] = value
    np.testing.assert_allclose(result.iou, expected, equal_nan=True)
    assert result.miou == pytest.approx(EXPECTED_MIOU)
    assert result.aacc == pytest.approx(EXPECTED_AACC)
    for kind, (inter, pred, label) in expected_counts().items():
        assert result.counts.intersection[ids[kind]] == inter
        assert result.counts.pred_area[ids[kind]] == pred
        assert result.counts.label_area[ids[kind]] == label


@pytest.mark.parametrize("name", sorted(SPECS))
def test_end_to_end_each_layout(tmp_path, name):
    write_dataset(tmp_path / "data", name)
    result = run(open_dataset(name, tmp_path / "data"), tmp_path / "out")
    assert result.num_images == 3 and result.resumed == 0 and not result.skipped
    check_expected(result, name)
    report = json.loads((tmp_path / "out/results.json").read_text())
    assert report["miou"] == pytest.approx(EXPECTED_MIOU)
    assert report["aacc"] == pytest.approx(EXPECTED_AACC)
    assert report["iou"][result.class_names[class_ids(name)[1]]] == pytest.approx(0.5)
    assert report["config"]["gamma"] == 0.7
    assert "| mIoU (%) | 62.50 |" in (tmp_path / "out/report.md").read_text()
    with Image.open(tmp_path / "out/iou.png") as chart:
        assert chart.format == "PNG"


def test_default_protocol_end_to_end(tmp_path, capsys):
    write_dataset(tmp_path / "data", "cityscapes")
    predictor = ColourPredictor("cityscapes")
    result = run(
        open_dataset("cityscapes", tmp_path / "data"),
        tmp_path / "out",
        predictor,
        eval_config=EvalConfig(),
        progress=True,
    )
    check_expected(result, "cityscapes")
    assert "mIoU=62.50" in capsys.readouterr().err  # the progress bar's running mIoU
    assert predictor.calls == 3 * 2  # 48×36 → 597×448: windows [0, 448) and [149, 597)


def test_missing_ground_truth_is_skipped_and_reported(tmp_path):
    images = (*IMAGES, (2, 2, 2))
    ids = write_dataset(tmp_path / "data", "ade20k", images, without_label=(3,))
    result = run(open_dataset("ade20k", tmp_path / "data"), tmp_path / "out")
    check_expected(result, "ade20k")  # the image without ground truth changes nothing
    assert [name for name, _ in result.skipped] == [ids[3]]
    report = json.loads((tmp_path / "out/results.json").read_text())
    assert report["skipped"][0]["image"] == ids[3]
    assert ids[3] in (tmp_path / "out/report.md").read_text()


class Interrupted(Exception):
    pass


class FailsAfter(ColourPredictor):
    def __init__(self, name, calls):
        super().__init__(name)
        self.budget = calls

    def scores(self, crop):
        if self.calls == self.budget:
            raise Interrupted
        return super().scores(crop)


def test_resume_after_interruption_gives_the_same_numbers(tmp_path):
    write_dataset(tmp_path / "data", "pascal_context59")
    dataset = open_dataset("pascal_context59", tmp_path / "data")
    with pytest.raises(Interrupted):  # dies inside the third image (4 windows per image)
        run(dataset, tmp_path / "out", FailsAfter("pascal_context59", 9))
    assert len((tmp_path / "out" / RESULTS_FILE).read_text().splitlines()) == 2
    predictor = ColourPredictor("pascal_context59")
    result = run(dataset, tmp_path / "out", predictor)
    assert result.resumed == 2 and predictor.calls == 4  # only the third image is redone
    check_expected(result, "pascal_context59")
    fresh = run(dataset, tmp_path / "fresh")
    np.testing.assert_array_equal(result.counts.intersection, fresh.counts.intersection)
    np.testing.assert_array_equal(result.counts.union, fresh.counts.union)

    again = ColourPredictor("pascal_context59")  # everything done: nothing recomputed
    assert run(dataset, tmp_path / "out", again).miou == fresh.miou and again.calls == 0


def test_resume_drops_a_half_written_line_and_honours_limit(tmp_path):
    write_dataset(tmp_path / "data", "cityscapes")
    dataset = open_dataset("cityscapes", tmp_path / "data")
    first = run(dataset, tmp_path / "out", limit=2)
    assert first.num_images == 2
    log = tmp_path / "out" / RESULTS_FILE
    log.write_text(log.read_text() + '{"name": "bremen/bre')  # killed mid-write
    predictor = ColourPredictor("cityscapes")
    result = run(dataset, tmp_path / "out", predictor)  # a larger limit extends the run
    assert result.resumed == 2 and predictor.calls == 4
    check_expected(result, "cityscapes")
    assert len(log.read_text().splitlines()) == 3


def test_resume_with_another_config_is_refused(tmp_path):
    write_dataset(tmp_path / "data", "ade20k")
    dataset = open_dataset("ade20k", tmp_path / "data")
    run(dataset, tmp_path / "out", limit=1)
    with pytest.raises(ValueError, match="config differs in: gamma"):
        run(dataset, tmp_path / "out", config_info={**INFO, "gamma": 0.5})
    restarted = run(dataset, tmp_path / "out", config_info={**INFO, "gamma": 0.5}, resume=False)
    assert restarted.resumed == 0 and restarted.num_images == 3


def test_save_predictions(tmp_path):
    ids = write_dataset(tmp_path / "data", "cityscapes")
    dataset = open_dataset("cityscapes", tmp_path / "data")
    run(dataset, tmp_path / "out", save_predictions=True)
    for image_id, kinds in zip(ids, IMAGES, strict=True):
        with Image.open(tmp_path / "out/predictions" / f"{image_id}.png") as png:
            pred = np.asarray(png)
        assert pred.shape == (36, 48) and pred.max() < 19
        predicted_kinds = tuple({2: 1}.get(k, k) for k in kinds)
        expected = stripes_label(predicted_kinds, class_ids("cityscapes"))
        valid = expected != 255
        np.testing.assert_array_equal(pred[valid], expected[valid])
    # a resumed run redoes an image whose prediction PNG went missing
    (tmp_path / "out/predictions" / f"{ids[0]}.png").unlink()
    predictor = ColourPredictor("cityscapes")
    run(dataset, tmp_path / "out", predictor, save_predictions=True)
    assert predictor.calls == 4 and (tmp_path / "out/predictions" / f"{ids[0]}.png").is_file()


def test_bad_ground_truth_fails_before_the_model_runs(tmp_path):
    write_dataset(tmp_path / "data", "cityscapes")
    dataset = open_dataset("cityscapes", tmp_path / "data")
    label = np.full((36, 48), 19, np.uint8)
    Image.fromarray(label).save(dataset.samples[0].label_path)
    predictor = ColourPredictor("cityscapes")
    with pytest.raises(ValueError, match=r"labels 19 outside \[0, 19\)"):
        run(dataset, tmp_path / "out", predictor)
    assert predictor.calls == 0


def test_predictor_class_count_must_match(tmp_path):
    write_dataset(tmp_path / "data", "cityscapes")
    with pytest.raises(ValueError, match="predictor scores 150 classes but cityscapes has 19"):
        run(
            open_dataset("cityscapes", tmp_path / "data"), tmp_path / "o", ColourPredictor("ade20k")
        )
