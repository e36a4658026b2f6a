"""A model whose queue is full is reported by `saturated()`: the SIP ingress answers new INVITEs
503 then, rather than taking calls that would only hear fallback phrases."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from voiceplat.providers.base import ProviderError
from voiceplat.providers.worker import SingleWorker, saturated

HANG_S = 60


def set_event(event: threading.Event, _job: object) -> None:
    event.set()


def test_a_full_queue_is_saturated_until_its_jobs_are_done() -> None:
    worker = SingleWorker("test-model", "{pending} jobs queued")
    release = threading.Event()
    try:
        assert "test-model" not in saturated()
        jobs = [worker.submit(lambda: release.wait(HANG_S), max_queue=2) for _ in range(2)]
        # Added after the worker's own callback (which frees the place), so they run after it.
        finished = [threading.Event() for _ in jobs]
        for job, event in zip(jobs, finished, strict=True):
            job.add_done_callback(partial(set_event, event))
        assert "test-model" in saturated()
        with pytest.raises(ProviderError):
            worker.submit(lambda: None, max_queue=2)  # what a new call's turn would get
        release.set()
        for event in finished:
            assert event.wait(HANG_S)
        assert "test-model" not in saturated()
    finally:
        release.set()
        worker.executor.shutdown(wait=True)
