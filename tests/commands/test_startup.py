"""``fossil --help`` and argument errors answer without importing torch (or numpy's heavy
neighbours): commands import their libraries inside ``run``."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "scipy", "PIL", "sqlalchemy", "transformers", "faiss", "spacy")


def test_the_parser_is_built_without_heavy_imports() -> None:
    code = (
        "import sys, fossil.cli as cli; cli.build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_an_argument_error_needs_no_torch() -> None:
    code = (
        "import sys, fossil.cli as cli\n"
        "try:\n    cli.main(['segment', 'x.png'])\n"
        "except SystemExit as exit:\n    print(exit.code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert "--concepts" in result.stderr  # argparse names the missing flag
