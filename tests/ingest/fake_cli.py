"""``python -m tests.ingest.fake_cli ARGS``: the ``fossil`` CLI with the fake test models
instead of ``--models`` (for subprocess tests that must not depend on model loading)."""

from __future__ import annotations

import sys

import fossil.commands.ingest as ingest_command
from fossil.cli import main
from tests.ingest.conftest import load_fake_models

if __name__ == "__main__":
    ingest_command._loaders = lambda args, *_: [load_fake_models] * args.workers  # type: ignore[assignment]
    sys.exit(main())
