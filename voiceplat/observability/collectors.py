"""Gauges read when Prometheus scrapes: what exists now, not what happened.

- `voiceplat_calls_active{robot,source}`: calls in progress (from the MetricsSinks);
- `voiceplat_model_queue_depth{model}` / `voiceplat_model_queue_limit{model}`: jobs queued or
  running on each local model's worker thread (providers/worker.py), and the queue's bound;
- `voiceplat_spool_items{robot,sink}`: record items waiting in a store sink's spool (they grow
  while the store is down); `voiceplat_store_up{robot,sink}`: 1 while the store takes writes;
- `voiceplat_recorder_dropped_total{robot}` / `voiceplat_recorder_failed_total{robot}`: record
  items the recorder dropped (a sink's queue was full) or a sink raised on.

One collector is registered in the default REGISTRY at import; robots and sinks register with
it and leave it when garbage-collected (weak references), so tests can make many.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from voiceplat.providers import worker
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.spooled_sink import SpooledSink


class ActiveCalls(Protocol):
    robot: str

    def active(self) -> dict[str, int]: ...


_active_sources: weakref.WeakSet[ActiveCalls] = weakref.WeakSet()
_recorders: weakref.WeakKeyDictionary[Recorder, str] = weakref.WeakKeyDictionary()


def add_active_source(source: ActiveCalls) -> None:
    _active_sources.add(source)


def watch_recorder(robot: str, recorder: Recorder) -> None:
    """Reports `recorder`'s drops and failures and its store sinks' spools as `robot`'s."""
    _recorders[recorder] = robot


class _NowCollector(Collector):
    def describe(self) -> list[Metric]:
        return []  # nothing to check for clashes: these names are this module's

    def collect(self) -> Iterator[Metric]:
        yield self._active()
        yield from self._queues()
        yield from self._recorders()

    @staticmethod
    def _active() -> Metric:
        family = GaugeMetricFamily(
            "voiceplat_calls_active", "Calls in progress.", labels=["robot", "source"]
        )
        totals: dict[tuple[str, str], int] = {}
        for source in list(_active_sources):
            for kind, count in source.active().items():
                key = (source.robot, kind)
                totals[key] = totals.get(key, 0) + count
        for (robot, kind), count in sorted(totals.items()):
            family.add_metric([robot, kind], count)
        return family

    @staticmethod
    def _queues() -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "voiceplat_model_queue_depth",
            "Jobs queued or running on a local model's worker thread.",
            labels=["model"],
        )
        limit = GaugeMetricFamily(
            "voiceplat_model_queue_limit",
            "The bound of a local model's queue (a job beyond it fails at once).",
            labels=["model"],
        )
        for model in worker.model_workers():
            depth.add_metric([model.name], model.pending)
            if model.max_queue is not None:
                limit.add_metric([model.name], model.max_queue)
        yield depth
        yield limit

    @staticmethod
    def _recorders() -> Iterator[Metric]:
        spool = GaugeMetricFamily(
            "voiceplat_spool_items",
            "Record items waiting in a store sink's spool for their store.",
            labels=["robot", "sink"],
        )
        up = GaugeMetricFamily(
            "voiceplat_store_up", "1 while the store takes writes.", labels=["robot", "sink"]
        )
        dropped = CounterMetricFamily(
            "voiceplat_recorder_dropped",
            "Record items dropped: a sink's queue was full.",
            labels=["robot"],
        )
        failed = CounterMetricFamily(
            "voiceplat_recorder_failed", "Record items a sink failed on.", labels=["robot"]
        )
        drops: dict[str, int] = {}
        failures: dict[str, int] = {}
        for recorder, robot in list(_recorders.items()):
            drops[robot] = drops.get(robot, 0) + recorder.dropped
            failures[robot] = failures.get(robot, 0) + recorder.failed
            for sink in recorder.sinks:
                if isinstance(sink, SpooledSink):
                    spool.add_metric([robot, sink.name], sink.spool.pending)
                    up.add_metric([robot, sink.name], int(sink.connected and sink.available))
        for robot in sorted(drops):
            dropped.add_metric([robot], drops[robot])
            failed.add_metric([robot], failures[robot])
        yield from (spool, up, dropped, failed)


COLLECTOR = _NowCollector()
REGISTRY.register(COLLECTOR)
