"""Prometheus metrics: one ``CollectorRegistry`` per app, scraped at ``GET /metrics``.

Counters and histograms are updated once per request (never per token):
``RequestTracing`` counts requests when they end, ``Started.items`` reports a
generation when its stream ends. Gauges of the deployments' state are read from
the ``Dispatcher`` at scrape time by ``DeploymentCollector``. docs/operations.md
lists every metric.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from engines import (
    Batching,
    Distribution,
    EngineUnavailable,
    Finish,
    SlotState,
    State,
    StepStats,
)

from .dispatch import Dispatcher
from .keys import Policy
from .openapi import OPEN_READ_ERRORS, OpenAIError, Operation
from .tracing import RequestInfo

__all__ = ["OPERATIONS", "DeploymentCollector", "KeyCollector", "Metrics", "metrics_endpoint"]

_ROUTE = ("model", "deployment")
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class Metrics:
    """The app's registry and the instruments the request path updates."""

    def __init__(self, dispatcher: Dispatcher, policy: Policy | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if policy is not None:
            r.register(KeyCollector(policy))
        self.requests = Counter(
            "roundhouse_requests",
            "HTTP requests by serving model, deployment, route template and status.",
            ("model", "deployment", "endpoint", "status"),
            registry=r,
        )
        self.ttft = Histogram(
            "roundhouse_time_to_first_token_seconds",
            "From the request's arrival to the engine's first item.",
            _ROUTE,
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "roundhouse_generation_duration_seconds",
            "From the request's arrival to the end of its generation stream.",
            _ROUTE,
            buckets=_E2E_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "roundhouse_inter_token_latency_seconds",
            "Mean time between completion tokens after the first, one sample per generation.",
            _ROUTE,
            buckets=_ITL_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "roundhouse_prompt_tokens", "Prompt tokens of finished generations.", _ROUTE, registry=r
        )
        self.completion_tokens = Counter(
            "roundhouse_completion_tokens",
            "Completion tokens of finished generations.",
            _ROUTE,
            registry=r,
        )
        r.register(DeploymentCollector(dispatcher))

    def request_done(self, info: RequestInfo, endpoint: str, status: int) -> None:
        self.requests.labels(info.model, info.deployment, endpoint, str(status)).inc()

    def generation_done(
        self, info: RequestInfo, first_at: float, finish: Finish | None, *, first_attempt: bool
    ) -> None:
        """One attempt's stream ended (``finish`` is None when it failed or was cut)."""
        now = time.perf_counter()
        labels = (info.model, info.deployment)
        if first_attempt:
            self.ttft.labels(*labels).observe(first_at - info.start)
        self.e2e.labels(*labels).observe(now - info.start)
        if finish is None:
            return
        usage = finish.usage
        self.prompt_tokens.labels(*labels).inc(usage.prompt_tokens)
        self.completion_tokens.labels(*labels).inc(usage.completion_tokens)
        if usage.completion_tokens > 1:
            self.itl.labels(*labels).observe((now - first_at) / (usage.completion_tokens - 1))


class KeyCollector(Collector):
    """Per-key requests and tokens, by the key's name (never the key), this replica's."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "roundhouse_key_requests",
            "API requests by key name and outcome (admitted, refused_rpm, refused_tpm, "
            "refused_max_parallel, refused_budget).",
            labels=("key", "outcome"),
        )
        for (key, outcome), count in sorted(self._policy.counts.items()):
            requests.add_metric((key, outcome), count)
        tokens = CounterMetricFamily(
            "roundhouse_key_tokens",
            "Tokens (prompt + completion) charged to each key, by exact usage.",
            labels=("key",),
        )
        for key, count in sorted(self._policy.tokens.items()):
            tokens.add_metric((key,), count)
        return [requests, tokens]


class DeploymentCollector(Collector):
    """Per-deployment gauges and guard counts, read from the dispatcher at scrape time."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def collect(self) -> Iterable[Metric]:
        d = self._dispatcher
        in_flight = GaugeMetricFamily(
            "roundhouse_requests_in_flight",
            "Requests the gateway has started on the deployment and not yet finished.",
            labels=["deployment"],
        )
        waiting = GaugeMetricFamily(
            "roundhouse_queue_depth",
            "Requests waiting in the deployment's engine queue.",
            labels=["deployment"],
        )
        state = GaugeMetricFamily(
            "roundhouse_deployment_state",
            "1 for the deployment's current state, 0 for the others.",
            labels=["deployment", "state"],
        )
        cooling = GaugeMetricFamily(
            "roundhouse_deployment_cooling",
            "1 while routing skips the deployment after repeated failures.",
            labels=["deployment"],
        )
        guard = CounterMetricFamily(
            "roundhouse_guard_interventions",
            "Degeneration guard interventions: stops, retries, exhausted.",
            labels=["deployment", "kind"],
        )
        estimate = GaugeMetricFamily(
            "roundhouse_deployment_memory_estimate_bytes",
            "Memory the deployment takes once loaded, as estimated for the memory budget.",
            labels=["deployment"],
        )
        load_seconds = GaugeMetricFamily(
            "roundhouse_deployment_load_seconds",
            "Duration of the deployment's last load (loading -> ready).",
            labels=["deployment"],
        )
        loads = CounterMetricFamily(
            "roundhouse_deployment_loads", "Loads that ended ready.", labels=["deployment"]
        )
        unloads = CounterMetricFamily(
            "roundhouse_deployment_unloads",
            "Unloads: idle ttl, memory-budget evictions, admin and Ollama requests, reloads.",
            labels=["deployment"],
        )
        budget = GaugeMetricFamily(
            "roundhouse_memory_budget_bytes", "The registry's memory_budget (absent: none)."
        )
        resident = GaugeMetricFamily(
            "roundhouse_memory_resident_bytes",
            "Estimated memory of the deployments loaded, loading or draining.",
        )
        lifecycle = d.lifecycle
        batching = _BatchFamilies()
        for slot in lifecycle.slots.values():
            engine, health = slot.engine, slot.health()
            if isinstance(engine, Batching) and health.state is State.READY:
                try:
                    batching.add(slot.name, engine.step_stats(), health.slots)
                except EngineUnavailable:  # unloaded between the two reads
                    continue
        if lifecycle.budget is not None:
            budget.add_metric([], lifecycle.budget)
        resident.add_metric([], lifecycle.resident_bytes())
        for slot in lifecycle.slots.values():
            if slot.estimate is not None:
                estimate.add_metric([slot.name], slot.estimate)
            if slot.load_seconds is not None:
                load_seconds.add_metric([slot.name], slot.load_seconds)
            loads.add_metric([slot.name], slot.loads)
            unloads.add_metric([slot.name], slot.unloads)
        for name, health in d.health().items():
            in_flight.add_metric([name], d.router.in_flight(name))
            waiting.add_metric([name], health.waiting)
            cooling.add_metric([name], 1 if d.router.cooling(name) else 0)
            for s in State:
                state.add_metric([name, s.value], 1 if health.state is s else 0)
            for kind, count in (d.guard_stats.snapshot(name) or {}).items():
                guard.add_metric([name, kind], count)
        return [
            in_flight,
            waiting,
            state,
            cooling,
            guard,
            estimate,
            load_seconds,
            loads,
            unloads,
            budget,
            resident,
            *batching.families(),
        ]


def _buckets(dist: Distribution) -> list[tuple[str, float]]:
    cumulative, out = 0, []
    for bound, count in zip((*dist.bounds, float("inf")), dist.counts, strict=True):
        cumulative += count
        out.append(("+Inf" if bound == float("inf") else f"{bound:g}", float(cumulative)))
    return out


class _BatchFamilies:
    """The figures of engines that decode in one shared batch (llamacpp)."""

    def __init__(self) -> None:
        labels = ["deployment"]
        self.slots = GaugeMetricFamily(
            "roundhouse_slots",
            "The engine's decoding slots, idle or processing.",
            labels=["deployment", "state"],
        )
        self.steps = CounterMetricFamily(
            "roundhouse_decode_steps",
            "Decode steps: one llama_decode of the shared batch.",
            labels=labels,
        )
        self.sequences = HistogramMetricFamily(
            "roundhouse_batch_sequences", "Sequences (slots) in each decode step.", labels=labels
        )
        self.tokens = HistogramMetricFamily(
            "roundhouse_batch_tokens",
            "Tokens in each decode step: one per generating slot plus prompt chunks.",
            labels=labels,
        )
        self.kv_used = GaugeMetricFamily(
            "roundhouse_kv_cells_used", "KV cache cells holding slots' tokens.", labels=labels
        )
        self.kv_cells = GaugeMetricFamily(
            "roundhouse_kv_cells", "KV cache cells of the context.", labels=labels
        )
        self.reused = CounterMetricFamily(
            "roundhouse_prompt_tokens_reused",
            "Prompt tokens taken from a slot's cache instead of evaluated (prefix reuse).",
            labels=labels,
        )
        self.evaluated = CounterMetricFamily(
            "roundhouse_prompt_tokens_evaluated", "Prompt tokens evaluated.", labels=labels
        )

    def add(self, name: str, stats: StepStats, slots: tuple[SlotState, ...]) -> None:
        busy = sum(1 for s in slots if s.processing)
        self.slots.add_metric([name, "processing"], busy)
        self.slots.add_metric([name, "idle"], len(slots) - busy)
        self.steps.add_metric([name], stats.steps)
        for family, dist in (
            (self.sequences, stats.sequences_per_step),
            (self.tokens, stats.tokens_per_step),
        ):
            family.add_metric([name], _buckets(dist), dist.total)
        self.kv_used.add_metric([name], stats.kv_cells_used)
        self.kv_cells.add_metric([name], stats.kv_cells)
        self.reused.add_metric([name], stats.prompt_tokens_reused)
        self.evaluated.add_metric([name], stats.prompt_tokens_evaluated)

    def families(self) -> list[Metric]:
        return [
            self.slots,
            self.steps,
            self.sequences,
            self.tokens,
            self.kv_used,
            self.kv_cells,
            self.reused,
            self.evaluated,
        ]


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics_endpoint(metrics: NamedDependency[Metrics]) -> Response[bytes]:
    # The classic text format, which every Prometheus reads; Litestar adds the charset.
    return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4")


OPERATIONS = [
    Operation(
        method="get",
        path="/metrics",
        summary="Prometheus metrics: requests, tokens, latencies, engine slots and KV cache",
        tag="Metrics",
        operation_id="metrics",
        # Prometheus' text exposition format 0.0.4 (Litestar appends "; charset=utf-8").
        response=str,
        media_type="text/plain; version=0.0.4",
        errors=OpenAIError,
        refusals=OPEN_READ_ERRORS,
        public=True,
    ),
]
