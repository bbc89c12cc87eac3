"""``python -m tests.ingest.fake_cli ARGS``: the ``fossil`` CLI with the fake test models
instead of ``--models`` (for subprocess tests that must not depend on model loading)."""

from __future__ import annotations

import sys

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from tests.ingest.conftest import load_fake_models

if __name__ == "__main__":
    ingest_run.model_loaders = lambda profile, devices, workers: [load_fake_models] * workers  # type: ignore[assignment]
    sys.exit(main())
