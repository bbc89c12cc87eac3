import json
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

import fossil.commands.eval as eval_command
from fossil.cli import main
from fossil.config import CollectionSettings
from tests.eval.fakes import ColourPredictor, write_dataset


@pytest.fixture
def recorded(monkeypatch):
    """The settings the fake store records (None: none); set ``recorded.settings``."""
    holder = SimpleNamespace(settings=None)

    @contextmanager
    def open_session(args, command, configure, **options):
        # the command's config, built from the settings the fake store records
        yield SimpleNamespace(config=configure(holder.settings), args=args)

    monkeypatch.setattr(eval_command, "open_session", open_session)
    return holder


@pytest.fixture
def fake_predictor(monkeypatch, recorded):
    """Replace models + store + prototypes by the colour predictor; record what was asked."""
    calls = []

    def open_predictor(session, class_names):
        calls.append((session, session.config, class_names))
        info = {"collection_revision": 42, "models": {"dense": "d"}}
        return ColourPredictor(session.args.dataset), info

    monkeypatch.setattr(eval_command, "open_predictor", open_predictor)
    return calls


def test_eval_uses_the_collections_settings_over_the_datasets_preset(
    tmp_path, fake_predictor, recorded
):
    recorded.settings = CollectionSettings(N=40, K=1, short_side=256, crop=256, stride=128)
    write_dataset(tmp_path / "data", "cityscapes")
    argv = ["eval", "cityscapes", "--data", str(tmp_path / "data"), "--store", "s",
            "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    config = fake_predictor[-1][1]
    assert (config.retrieval.N, config.retrieval.K, config.scoring.gamma) == (40, 1, 0.5)
    assert (config.eval.short_side, config.eval.crop, config.eval.stride) == (256, 256, 128)
    info = json.loads((tmp_path / "out/results.json").read_text())["config"]
    assert info["preset"] == "collection"
    # an explicit --preset or flag still wins; the recorded sides stay
    assert main([*argv, "--preset", "ade", "--k", "5", "--restart"]) == 0
    config = fake_predictor[-1][1]
    assert (config.retrieval.N, config.retrieval.K, config.eval.crop) == (150, 5, 256)


def test_eval_command_end_to_end(tmp_path, fake_predictor, capsys):
    write_dataset(tmp_path / "data", "cityscapes")
    argv = [
        "eval", "cityscapes", "--data", str(tmp_path / "data"), "--store", str(tmp_path / "s"),
        "--k", "20", "--no-crf", "--out", str(tmp_path / "out"), "--save-predictions",
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "cityscapes: mIoU 62.50  aAcc 78.70  (3 images, 0 resumed)" in capsys.readouterr().out
    ((_, config, class_names),) = fake_predictor
    assert (config.retrieval.N, config.retrieval.K, config.scoring.gamma) == (95, 20, 0.55)
    assert not config.opencut.crf.enabled and config.regions == "opencut"
    assert class_names[0] == "road" and len(class_names) == 19
    info = json.loads((tmp_path / "out/results.json").read_text())["config"]
    assert info["preset"] == "cityscapes" and info["K"] == 20 and info["N"] == 95
    assert info["tau_foreground"] == [0.5, 0.6, 0.7]
    assert (info["opencut"]["variant"], info["opencut"]["tau_space"]) == ("paper", "quantile")
    assert info["collection_revision"] == 42 and info["models"] == {"dense": "d"}
    assert "numpy" in info["packages"]
    assert "| collection_revision | `42` |" in (tmp_path / "out/report.md").read_text()
    assert len(list((tmp_path / "out/predictions").rglob("*.png"))) == 3
    assert main(argv) == 0  # rerun: everything is resumed
    assert "(3 images, 3 resumed)" in capsys.readouterr().out


def test_eval_command_default_out_dir_and_preset(tmp_path, fake_predictor, monkeypatch, capsys):
    write_dataset(tmp_path / "data", "ade20k")
    monkeypatch.chdir(tmp_path)
    argv = ["eval", "ade20k", "--data", "data", "--store", "s", "--limit", "1", "--no-progress"]
    assert main(argv) == 0
    report = tmp_path / "fossil-eval/ade20k/N150_K10_gamma0.5/results.json"
    assert json.loads(report.read_text())["num_images"] == 1


def test_eval_command_checks_the_layout_before_loading_models(tmp_path, fake_predictor, capsys):
    argv = ["eval", "ade20k", "--data", str(tmp_path), "--store", str(tmp_path / "store")]
    assert main(argv) == 1
    assert "images/validation not found" in capsys.readouterr().err
    assert not fake_predictor
    write_dataset(tmp_path, "ade20k")
    assert main([*argv, "--limit", "0"]) == 1
    assert "--limit (0) must be >= 1" in capsys.readouterr().err and not fake_predictor
