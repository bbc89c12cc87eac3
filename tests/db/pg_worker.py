"""``python -m tests.db.pg_worker ARGS``: the ``fossil`` CLI with the fake ingest models (as
:mod:`tests.ingest.fake_cli`), whose generator sleeps ``FOSSIL_TEST_BATCH_SECONDS`` per batch
so that concurrent worker processes overlap (the fakes alone finish a batch in microseconds).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import fossil.pipeline.ingest as ingest_run
from fossil.cli import main
from fossil.records import GeneratedImage, Noun
from tests.ingest.conftest import FakeGenerator, FakeModels

DELAY_ENV = "FOSSIL_TEST_BATCH_SECONDS"


class SlowGenerator(FakeGenerator):
    """The fake generator (same images, masks and fingerprint), plus a pause per batch."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def generate(
        self, captions: Sequence[str], nouns: Sequence[Sequence[Noun]]
    ) -> list[GeneratedImage]:
        time.sleep(self.seconds)
        return super().generate(captions, nouns)


def load_slow_fake_models() -> FakeModels:
    return FakeModels(generator=SlowGenerator(float(os.environ.get(DELAY_ENV, "0"))))


if __name__ == "__main__":
    ingest_run.model_loaders = lambda profile, devices, workers: [load_slow_fake_models] * workers  # type: ignore[assignment]
    sys.exit(main())
