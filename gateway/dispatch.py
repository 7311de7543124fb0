"""From a model name to a running engine: resolution, routing, retries, fallbacks.

The ``Dispatcher`` owns every engine built from the registry; the app's lifespan
starts and closes it. A request that fails before its first token is tried again
on the next usable deployment (its model's, then its fallbacks'); once a byte has
gone to the client it is never retried.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TypeVar

import msgspec
import stamina
from litestar.types import Receive

from engines import (
    Embeddings,
    EmbedRequest,
    Engine,
    EngineError,
    EngineSpec,
    EngineUnavailable,
    GenerateRequest,
    Health,
    Overloaded,
    SplitsReasoning,
    StreamItem,
    UpstreamTimeout,
    build_engine,
    split_reasoning,
)

from . import tracing
from .bounds import Bounds
from .errors import APIError, from_engine_error
from .generation import Started, unless_disconnected
from .guard import GuardStats, Watch, guarded
from .host import parse_memory_budget
from .keys import current_key
from .lifecycle import Lifecycle, Phase, Slot
from .registry import Deployment, ModelSpec, Registry
from .routing import Lease, Route, Router, is_retryable

__all__ = ["Dispatcher", "permitted"]

log = logging.getLogger("roundhouse.gateway")

T = TypeVar("T")


class _Retry(Exception):
    """One failed attempt that routing may try again after ``wait`` seconds."""

    def __init__(self, error: EngineError, wait: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait = wait


def _backoff(exc: Exception) -> bool | float:
    return exc.wait if isinstance(exc, _Retry) else False


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        engines: Mapping[str, Engine] | None = None,
        *,
        factories: Mapping[str, Callable[[], Engine]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Engines handed in already built (embedders, tests) start with the gateway, as
        # if preloaded, and every load reuses the same instance.
        preload_all = factories is None
        if factories is None:
            factories = {name: _reuse(engine) for name, engine in (engines or {}).items()}
        self.router = Router(registry.routing, clock)
        self.guard_stats = GuardStats()
        self.lifecycle = Lifecycle(
            registry,
            factories,
            budget=_budget(registry.memory_budget),
            clock=clock,
            preload_all=preload_all,
        )
        self._adopt(registry)
        self.load_seconds: float | None = None
        # What one request may carry; the app sets the operator's (ROUNDHOUSE_MAX_*).
        self.bounds = Bounds()
        # Reported as every model's "created" time: when this registry was loaded.
        self.created = int(time.time())

    def _adopt(self, registry: Registry) -> None:
        by_name: dict[str, ModelSpec] = {}
        for model in registry.models:
            if model.degeneration_guard is not None:
                for dep in model.deployments:
                    self.guard_stats.track(dep.name or model.name)
            by_name[model.name] = model
            for alias in model.aliases:
                by_name[alias] = model
        self.registry = registry
        self._by_name = by_name
        self.router.routing = registry.routing

    @classmethod
    def from_registry(cls, registry: Registry) -> Dispatcher:
        return cls(registry, factories=_factories(registry))

    def reload(self, registry: Registry) -> None:
        """Serve ``registry`` from now on (see ``Lifecycle.replace``); raises ValueError
        for an engine that cannot be built, leaving the old registry in place."""
        budget = _budget(registry.memory_budget)
        self.lifecycle.replace(registry, _factories(registry), budget=budget)
        self._adopt(registry)

    async def start(self) -> None:
        started = time.monotonic()
        await self.lifecycle.start()
        self.load_seconds = time.monotonic() - started

    async def close(self) -> None:
        await self.lifecycle.close()

    def slot(self, deployment: Deployment) -> Slot:
        assert deployment.name is not None
        return self.lifecycle.slots[deployment.name]

    def engine(self, deployment: Deployment) -> Engine:
        return self.slot(deployment).engine

    def health(self) -> dict[str, Health]:
        return {name: slot.health() for name, slot in self.lifecycle.slots.items()}

    async def load_model(self, model: ModelSpec) -> None:
        """Bring one deployment of ``model`` up now (Ollama's load request)."""
        granted = await self.lifecycle.ensure([[d.name or "" for d in model.deployments]])
        if granted is not None:
            self.lifecycle.ungrant(granted)
        if not any(self.slot(d).phase is Phase.READY for d in model.deployments):
            raise from_engine_error(self._unavailable(model))

    def unload_model(self, model: ModelSpec) -> None:
        """Drain and unload ``model`` (Ollama's keep_alive 0); pinned models stay."""
        if not model.pinned:
            for d in model.deployments:
                self.lifecycle.unload(d.name or "")

    def resolve(self, name: str) -> ModelSpec:
        return _permitted(self._resolve(name))

    def _resolve(self, name: str) -> ModelSpec:
        model = self._by_name.get(name)
        if model is None:
            available = ", ".join(self.registry.names()) or "none"
            raise APIError(
                404,
                f"The model {name!r} does not exist. Available models: {available}",
                param="model",
                code="model_not_found",
            )
        return model

    def primary(self) -> ModelSpec:
        """The model of single-model APIs (llama-server, SakuraLLM): the default or the first."""
        if self.registry.default_model is not None:
            return self._by_name[self.registry.default_model]
        return self.registry.models[0]

    def resolve_for_request(self, name: str | None, *, single_model: bool = False) -> ModelSpec:
        """The model a generation request names, with the registry's ``default_model``
        answering an unknown or empty name.

        ``single_model`` is for APIs whose original server had only one model (llama-server's
        ``/completion``, SakuraLLM's ``/api/v1/generate``): any name it does not know, or
        none, means the primary model.
        """
        model = self._by_name.get(name) if name else None
        if model is None and single_model:
            model = self.primary()
        if model is None and self.registry.default_model is not None:
            model = self._by_name[self.registry.default_model]
        return _permitted(model) if model is not None else self.resolve(name or "")

    def _chain(self, model: ModelSpec) -> list[ModelSpec]:
        # A key that may use a model may use its fallbacks: they answer in its place.
        return [model, *(self._resolve(f) for f in model.fallbacks)]

    def _groups(
        self, chain: list[ModelSpec], granted: Slot | None
    ) -> tuple[list[list[Route]], dict[str, Slot]]:
        """Routes to the loaded deployments; a draining one only for the request that a
        load was granted to (it waited its turn)."""
        groups: list[list[Route]] = []
        slots: dict[str, Slot] = {}
        for m in chain:
            group = []
            for d in m.deployments:
                slot = self.lifecycle.slots.get(d.name or "")
                if slot is not None and (slot.phase is Phase.READY or slot is granted):
                    group.append(Route(model=m, deployment=d, engine=slot.engine))
                    slots[slot.name] = slot
            groups.append(group)
        return groups, slots

    def _unavailable(self, model: ModelSpec) -> EngineError:
        """Why nothing can serve ``model`` right now, in the words of its first deployment."""
        first = model.deployments[0]
        health = self.slot(first).health()
        if first.name is not None and self.router.cooling(first.name):
            return EngineUnavailable(
                f"every deployment of {model.name!r} is cooling down after repeated failures"
            )
        reason = f": {health.message}" if health.message else ""
        return EngineUnavailable(f"model {model.name!r} is {health.state.value}{reason}")

    async def _attempts(
        self, model: ModelSpec, run: Callable[[Route, Lease], Awaitable[T]]
    ) -> tuple[Route, T, int]:
        """Run ``run`` on the best deployment, moving on while failures are retryable."""
        chain = self._chain(model)
        granted = await self.lifecycle.ensure(
            [[d.name or "" for d in m.deployments] for m in chain]
        )
        try:
            return await self._route(model, chain, granted, run)
        finally:
            if granted is not None:
                self.lifecycle.ungrant(granted)

    async def _route(
        self,
        model: ModelSpec,
        chain: list[ModelSpec],
        granted: Slot | None,
        run: Callable[[Route, Lease], Awaitable[T]],
    ) -> tuple[Route, T, int]:
        groups, slots = self._groups(chain, granted)
        routing = self.registry.routing
        tried: set[str] = set()
        turn = self.router.next_turn()
        count = 0
        try:
            for attempt in stamina.retry_context(
                on=_backoff,
                attempts=routing.attempts,
                timeout=None,
                wait_initial=0.05,
                wait_max=routing.max_retry_wait,
                wait_jitter=0.0,
            ):
                with attempt:
                    route = next(self.router.order(groups, tried, turn), None)
                    if route is None:
                        raise from_engine_error(self._unavailable(model))
                    count += 1
                    name = route.deployment.name or ""
                    lease = self.router.acquire(route, self.lifecycle.hold(slots[name]))
                    try:
                        result = await run(route, lease)
                    except EngineError as exc:
                        lease.release(exc)
                        if not is_retryable(exc):
                            raise from_engine_error(exc) from None
                        assert route.deployment.name is not None
                        tried.add(route.deployment.name)
                        log.warning("deployment %s failed: %s", route.deployment.name, exc)
                        raise self._retry(exc, groups, tried, turn) from None
                    except BaseException:
                        lease.release(None, conclusive=False)
                        raise
                    tracing.served_by(route.model.name, route.deployment.name or "")
                    return route, result, count
        except _Retry as exc:
            raise from_engine_error(exc.error) from None
        raise AssertionError("unreachable: stamina re-raises the last failure")

    def _retry(
        self, error: EngineError, groups: list[list[Route]], tried: set[str], turn: int
    ) -> _Retry:
        max_wait = self.registry.routing.max_retry_wait
        if next(self.router.order(groups, tried, turn), None) is not None:
            return _Retry(error, 0.0)  # another deployment is ready: go at once
        if isinstance(error, Overloaded) and error.retry_after <= max_wait:
            tried.clear()  # everyone is busy: wait as asked, then try them again
            return _Retry(error, float(error.retry_after))
        raise from_engine_error(error)

    async def generate(
        self, name: str, build: Callable[[ModelSpec], GenerateRequest], receive: Receive
    ) -> Started:
        """Start a generation: returns once its first item is in hand."""
        model = self.resolve_for_request(name)
        # Refused before a slot is taken: counting is cheap, templating 20,000 is not.
        self.bounds.check_generate(build(model))
        return await unless_disconnected(receive, self._start(model, build))

    async def _start(
        self, model: ModelSpec, build: Callable[[ModelSpec], GenerateRequest]
    ) -> Started:
        async def first_item(route: Route, lease: Lease) -> Started:
            timeouts = route.deployment.timeouts
            loop = asyncio.get_running_loop()
            deadline = None if timeouts.total is None else loop.time() + timeouts.total
            request = build(route.model)
            stream: AsyncGenerator[StreamItem, None] = route.engine.generate(request)
            # The one place the guard wraps an engine stream, whatever the API.
            guard = route.model.degeneration_guard
            watch = None if guard is None else Watch(guard, route, self.guard_stats)
            if watch is not None:
                stream = guarded(stream, watch)
            split_here = not isinstance(route.engine, SplitsReasoning)
            if split_here and request.messages is not None and request.reasoning is not None:
                # Outside the guard, which alone throws Halt into the engine's stream.
                stream = split_reasoning(stream, request.reasoning)
            try:
                async with asyncio.timeout(timeouts.first_token):
                    first = await anext(stream)
            except TimeoutError:
                await stream.aclose()
                raise UpstreamTimeout(
                    f"{route.deployment.name} sent no first token within {timeouts.first_token}s"
                ) from None
            except StopAsyncIteration:
                raise APIError(
                    500, "the engine ended without a result", code="internal_error"
                ) from None
            except BaseException:
                await stream.aclose()
                raise
            return Started(
                route=route,
                first=first,
                rest=stream,
                lease=lease,
                deadline=deadline,
                attempts=0,
                watch=watch,
            )

        _, started, count = await self._attempts(model, first_item)
        started.attempts = count
        started.restart = lambda penalty: self._start(model, _with_penalty(build, penalty))
        return started

    async def embed(
        self, name: str, request: EmbedRequest, receive: Receive
    ) -> tuple[Route, Embeddings]:
        async def run(route: Route, lease: Lease) -> Embeddings:
            result = await route.engine.embed(request)
            lease.release(None)
            info = tracing.current()
            if info is not None:
                info.tokens += result.prompt_tokens
            return result

        self.bounds.check_items(len(request.inputs), "input")
        # Embeddings never fall back to default_model: a vector space is not interchangeable.
        model = self.resolve(name)
        route, result, _ = await unless_disconnected(receive, self._attempts(model, run))
        return route, result


def permitted(model: ModelSpec) -> bool:
    """Whether the calling key (if keys are set) may use ``model``."""
    key = current_key()
    return key is None or key.allows(model.name, model.aliases)


def _permitted(model: ModelSpec) -> ModelSpec:
    if not permitted(model):
        key = current_key()
        assert key is not None
        raise APIError(
            403,
            f"key {key.name!r} may not use model {model.name!r}",
            param="model",
            code="model_not_allowed",
        )
    return model


def _with_penalty(
    build: Callable[[ModelSpec], GenerateRequest], penalty: float
) -> Callable[[ModelSpec], GenerateRequest]:
    """A guard retry's request: at least ``penalty``, never less than the client asked."""

    def rebuilt(model: ModelSpec) -> GenerateRequest:
        request = build(model)
        current = request.frequency_penalty or 0.0
        return msgspec.structs.replace(request, frequency_penalty=max(current, penalty))

    return rebuilt


def _reuse(engine: Engine) -> Callable[[], Engine]:
    return lambda: engine


def _factories(registry: Registry) -> dict[str, Callable[[], Engine]]:
    """How to build each deployment's engine, once per load."""
    factories: dict[str, Callable[[], Engine]] = {}
    for model in registry.models:
        for dep in model.deployments:
            assert dep.name is not None
            spec = EngineSpec(
                name=dep.name, path=dep.path, url=dep.url, model=dep.model, options=dep.options
            )
            factories[dep.name] = functools.partial(build_engine, dep.engine, spec)
    return factories


def _budget(value: int | str | None) -> int | None:
    return None if value is None else parse_memory_budget(value).bytes
