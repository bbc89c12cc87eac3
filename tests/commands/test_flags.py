"""One definition per shared flag (issue 28 item 3): the commands take --store, --json,
--preset, --models, --device, --n, --k, --per-concept and --qdrant-api-key from
fossil.commands._options, so their defaults, bounds and help cannot drift apart."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

import fossil.commands
import fossil.db.export
from fossil.cli import build_parser, main
from fossil.commands._options import per_concept
from fossil.config import RetrievalConfig
from fossil.ingest.concepts import MAX_PER_CONCEPT

COMMANDS = Path(fossil.commands.__file__).parent
SHARED = (
    "--store", "--json", "--preset", "--models", "--device", "--n", "--k", "--per-concept",
    "--qdrant-api-key",
)  # fmt: skip


def _defined_flags(path: Path) -> list[str]:
    """The option strings of every ``add_argument`` call in ``path``."""
    flags = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return flags


def test_each_shared_flag_is_defined_once() -> None:
    places: dict[str, list[str]] = {flag: [] for flag in SHARED}
    for path in sorted(COMMANDS.glob("*.py")):
        for flag in _defined_flags(path):
            if flag in places:
                places[flag].append(path.name)
    assert places == {flag: ["_options.py"] for flag in SHARED}


def test_every_command_with_a_store_reads_it_into_args_store() -> None:
    parser = build_parser()
    argvs = [
        ["ingest"], ["query", "dog"], ["segment", "x.png", "--concepts", "dog"],
        ["eval", "ade20k", "--data", "d"], ["serve"], ["info"], ["corpus", "list"],
        ["corpus", "remove", "c"], ["store", "check"], ["store", "export", "--to", "u"],
    ]  # fmt: skip
    for argv in argvs:
        assert parser.parse_args([*argv, "--store", "s"]).store == "s", argv


@pytest.mark.parametrize("command", [["ingest", "--concepts", "axolotl"], ["query", "axolotl"]])
def test_per_concept_has_one_default_and_one_bound(command: list[str]) -> None:
    parser = build_parser()
    N = RetrievalConfig().N
    assert per_concept(parser.parse_args(command), N) == N  # default: N
    assert per_concept(parser.parse_args(command), 500) == MAX_PER_CONCEPT  # N past the bound
    assert per_concept(parser.parse_args([*command, "--per-concept", "7"]), N) == 7
    for M, bound in ((0, ">= 1"), (MAX_PER_CONCEPT + 1, f"<= {MAX_PER_CONCEPT}")):
        with pytest.raises(ValueError, match=f"--per-concept \\({M}\\) must be {bound}"):
            per_concept(parser.parse_args([*command, "--per-concept", str(M)]), N)


def test_ingest_refuses_per_concept_past_the_bound_before_touching_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ingest", "--store", str(tmp_path / "s"), "--concepts", "axolotl"]
    assert main([*argv, "--per-concept", str(MAX_PER_CONCEPT + 1)]) == 1
    assert f"--per-concept ({MAX_PER_CONCEPT + 1}) must be <= {MAX_PER_CONCEPT}" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "s").exists()


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """``fossil store export`` with the export itself replaced: the keywords it got."""
    calls: list[dict] = []

    def export_store(store: str, to: str, **kwargs: object) -> None:
        calls.append(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(fossil.db.export, "export_store", export_store)
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
    return calls


EXPORT = ["store", "export", "--store", "s", "--to", "http://q:6333"]


def test_store_export_takes_the_qdrant_key_as_every_command_spells_it(
    exported: list[dict], caplog: pytest.LogCaptureFixture
) -> None:
    assert main([*EXPORT, "--qdrant-api-key", "k1"]) == 1
    assert exported[-1]["api_key"] == "k1"
    assert "deprecated" not in caplog.text


def test_store_export_api_key_is_a_hidden_deprecated_alias(
    exported: list[dict], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.WARNING, logger="fossil.cli"):
        assert main([*EXPORT, "--api-key", "k2"]) == 1
    assert exported[-1]["api_key"] == "k2"
    assert "--api-key is deprecated and will be removed: use --qdrant-api-key" in caplog.text
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["store", "export", "--help"])
    help_text = capsys.readouterr().out
    assert "--qdrant-api-key KEY" in help_text and "--api-key" not in help_text.replace(
        "--qdrant-api-key", ""
    )
