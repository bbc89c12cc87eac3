"""``fossil.commands._interrupt.GracefulInterrupt``: armed only while batches run."""

from __future__ import annotations

import os
import signal

import pytest

from fossil.commands._interrupt import GracefulInterrupt
from fossil.pipeline.ingest import IngestProgress


def test_unarmed_ctrl_c_stops_at_once_and_follow_arms_it_while_batches_run() -> None:
    with GracefulInterrupt(armed=False) as interrupt:
        with pytest.raises(KeyboardInterrupt):  # models loading: nothing to finish
            os.kill(os.getpid(), signal.SIGINT)
        assert not interrupt()
        interrupt.follow(IngestProgress("start", total=4))
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt()  # a request to stop after the current batch
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_follow_disarms_when_the_batches_are_over() -> None:
    with GracefulInterrupt(armed=False) as interrupt:
        interrupt.follow(IngestProgress("start", total=4))
        interrupt.follow(IngestProgress("end", total=4, captions=4))
        with pytest.raises(KeyboardInterrupt):  # lemma index, summary: stop now
            os.kill(os.getpid(), signal.SIGINT)
        assert not interrupt()
