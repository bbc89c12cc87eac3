"""Library errors name library options, never command-line flags; the CLI appends the flag of
the running command (fossil.errors, fossil.cli.OPTION_FLAGS) — issue 17, item 6."""

from __future__ import annotations

import ast
import re
from argparse import Namespace
from pathlib import Path

import pytest

import fossil
from fossil.cli import OPTION_FLAGS, build_parser, main, user_message
from fossil.errors import naming, option_of

PACKAGE = Path(fossil.__file__).parent
COMMAND_LAYER = ("commands", "cli.py", "serve")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def _raised_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """The string parts of every ``raise`` statement's expression (messages, f-strings)."""
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    texts.append((node.lineno, part.value))
    return texts


def test_library_errors_name_no_flags() -> None:
    """A command the user can run, in backquotes (```fossil store check --repair```), may be
    named in a message; a bare flag may not — the library call that failed has no flags."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in COMMAND_LAYER:
            continue
        for line, text in _raised_texts(ast.parse(path.read_text("utf-8"))):
            if FLAG.search(re.sub(r"`[^`]*(`|$)", "", text)):  # `a command` may have flags
                offenders.append(f"{relative}:{line}: {text!r}")
    assert not offenders, "\n".join(offenders)


def test_the_flag_is_appended_only_where_the_command_has_it() -> None:
    error = naming(ValueError("max_mb (0) must be > 0"), "max_mb")
    assert option_of(error) == "max_mb" and option_of(ValueError("x")) is None
    with_flag = user_message(error, Namespace(max_image_mb=0.0))
    assert with_flag == "max_mb (0) must be > 0 (flag: --max-image-mb MB)"
    assert user_message(error, Namespace(out="x")) == "max_mb (0) must be > 0"
    assert user_message(ValueError("plain"), Namespace(max_image_mb=1.0)) == "plain"


def _dests(parser: object) -> set[str]:
    """Every argparse dest of ``parser`` and of its subcommands, recursively."""
    found = set()
    for action in parser._actions:  # type: ignore[attr-defined]
        found.add(action.dest)
        choices = getattr(action, "choices", None)
        for sub in choices.values() if isinstance(choices, dict) else ():
            found |= _dests(sub)
    return found


def test_every_option_maps_to_a_flag_some_command_has() -> None:
    dests = _dests(build_parser())
    for option, (dest, flag) in OPTION_FLAGS.items():
        assert dest in dests, f"{option}: no command has a flag with dest {dest!r}"
        assert flag.split()[0].lstrip("-").replace("-", "_") == dest, option


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["ingest", "{dir}/captions.csv", "--store", "{dir}/store"], "(flag: --csv-column COLUMN)"),
        (["ingest", "{dir}/captions.xyz", "--store", "{dir}/store"], "(flag: --format)"),
        (["eval", "ade20k", "--data", "{dir}/nowhere", "--store", "{dir}/store"], "(flag: --data"),
    ],  # fmt: skip
)
def test_the_cli_user_still_reads_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    (tmp_path / "captions.csv").write_text("text\nA dog on the grass\n")
    (tmp_path / "captions.xyz").write_text("A dog on the grass\n")
    assert main([a.format(dir=tmp_path) for a in argv]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and flag in err, err
