"""Recent figures per model for the console's charts, sampled from the app's metrics.

Every ``interval`` seconds a task reads the same Prometheus registry ``/metrics``
serves and keeps the differences: nothing is added to the request path, and the
page draws from a few hundred numbers instead of parsing Prometheus text.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

__all__ = ["Sample", "Sampler"]


class ModelSample(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    errors: int
    tokens_per_second: float
    # Mean time to first token of the interval's generations; None when there were none.
    ttft_ms: float | None
    queue: int
    in_flight: int


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    models: dict[str, ModelSample]


class _Totals(msgspec.Struct, kw_only=True):
    requests: dict[str, float]
    errors: dict[str, float]
    tokens: dict[str, float]
    ttft_sum: dict[str, float]
    ttft_count: dict[str, float]
    queue: dict[str, float]
    in_flight: dict[str, float]


def _read(registry: CollectorRegistry, model_of: dict[str, str]) -> _Totals:
    totals = _Totals(
        requests=collections.defaultdict(float),
        errors=collections.defaultdict(float),
        tokens=collections.defaultdict(float),
        ttft_sum=collections.defaultdict(float),
        ttft_count=collections.defaultdict(float),
        queue=collections.defaultdict(float),
        in_flight=collections.defaultdict(float),
    )
    for family in registry.collect():
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            if sample.name == "roundhouse_requests_total" and labels.get("model"):
                totals.requests[labels["model"]] += value
                if int(labels.get("status", "0")) >= 400:
                    totals.errors[labels["model"]] += value
            elif sample.name == "roundhouse_completion_tokens_total":
                totals.tokens[labels["model"]] += value
            elif sample.name == "roundhouse_time_to_first_token_seconds_sum":
                totals.ttft_sum[labels["model"]] += value
            elif sample.name == "roundhouse_time_to_first_token_seconds_count":
                totals.ttft_count[labels["model"]] += value
            elif sample.name in ("roundhouse_queue_depth", "roundhouse_requests_in_flight"):
                model = model_of.get(labels.get("deployment", ""))
                if model is not None:
                    into = (
                        totals.queue
                        if sample.name == "roundhouse_queue_depth"
                        else totals.in_flight
                    )
                    into[model] += value
    return totals


class Sampler:
    """The last ``keep`` samples, one per ``interval`` seconds, taken by a task."""

    def __init__(
        self,
        registry: CollectorRegistry,
        models: Any,
        *,
        interval: float = 2.0,
        keep: int = 150,
    ) -> None:
        self._registry = registry
        # Called at each sample: the registry may be reloaded in between.
        self._models = models
        self.interval = interval
        self.samples: collections.deque[Sample] = collections.deque(maxlen=keep)
        self._task: asyncio.Task[None] | None = None

    def _model_of(self) -> dict[str, str]:
        return {dep: model for model, deps in self._models().items() for dep in deps}

    def sample(self, before: _Totals, now: _Totals, seconds: float) -> Sample:
        names = sorted(self._models())
        out = {}
        for name in names:
            count = now.ttft_count[name] - before.ttft_count[name]
            ttft = (now.ttft_sum[name] - before.ttft_sum[name]) / count * 1000 if count else None
            out[name] = ModelSample(
                requests=round(now.requests[name] - before.requests[name]),
                errors=round(now.errors[name] - before.errors[name]),
                tokens_per_second=round((now.tokens[name] - before.tokens[name]) / seconds, 2),
                ttft_ms=None if ttft is None else round(ttft, 1),
                queue=round(now.queue[name]),
                in_flight=round(now.in_flight[name]),
            )
        return Sample(at=time.time(), models=out)

    async def _run(self) -> None:
        before, then = _read(self._registry, self._model_of()), time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            now, at = _read(self._registry, self._model_of()), time.monotonic()
            self.samples.append(self.sample(before, now, at - then))
            before, then = now, at

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="console sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
