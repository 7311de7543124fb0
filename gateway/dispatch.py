"""From a model name to a running engine: resolution, deployment choice, policy.

The ``Dispatcher`` owns every engine built from the registry; the app's lifespan
starts and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Mapping
from contextlib import aclosing
from typing import TypeVar

import msgspec
from litestar.types import Receive

from engines import (
    Engine,
    EngineError,
    EngineSpec,
    Finish,
    GenerateRequest,
    Health,
    State,
    StreamItem,
    TextDelta,
    build_engine,
)

from .errors import APIError, ClientDisconnected, from_engine_error
from .registry import Deployment, ModelSpec, Registry

__all__ = ["Dispatcher", "Route", "Started", "apply_policy"]

log = logging.getLogger("roundhouse.gateway")

T = TypeVar("T")


def pick(value: T | None, default: T | None) -> T | None:
    return default if value is None else value


class Route(msgspec.Struct, frozen=True, kw_only=True):
    model: ModelSpec
    deployment: Deployment
    engine: Engine


class Dispatcher:
    def __init__(self, registry: Registry, engines: Mapping[str, Engine]) -> None:
        self.registry = registry
        self._engines = dict(engines)
        self._by_name: dict[str, ModelSpec] = {}
        for model in registry.models:
            self._by_name[model.name] = model
            for alias in model.aliases:
                self._by_name[alias] = model
        self.load_seconds: float | None = None
        # Reported as every model's "created" time: when this registry was loaded.
        self.created = int(time.time())

    @classmethod
    def from_registry(cls, registry: Registry) -> Dispatcher:
        engines: dict[str, Engine] = {}
        for model in registry.models:
            for dep in model.deployments:
                assert dep.name is not None
                spec = EngineSpec(
                    name=dep.name, path=dep.path, url=dep.url, model=dep.model, options=dep.options
                )
                engines[dep.name] = build_engine(dep.engine, spec)
        return cls(registry, engines)

    async def start(self) -> None:
        started = time.monotonic()
        await asyncio.gather(*(engine.start() for engine in self._engines.values()))
        self.load_seconds = time.monotonic() - started

    async def close(self) -> None:
        await asyncio.gather(*(engine.close() for engine in self._engines.values()))

    def engine(self, deployment: Deployment) -> Engine:
        assert deployment.name is not None
        return self._engines[deployment.name]

    def health(self) -> dict[str, Health]:
        return {name: engine.health() for name, engine in self._engines.items()}

    def resolve(self, name: str) -> ModelSpec:
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

    def route(self, name: str) -> Route:
        """The first ready deployment of the model, else of its fallbacks in order.

        With none ready, the model's first deployment is returned, and its engine
        explains why it cannot serve (loading, failed) when asked.
        """
        model = self.resolve(name)
        for candidate in (model, *(self.resolve(f) for f in model.fallbacks)):
            for dep in candidate.deployments:
                engine = self.engine(dep)
                if engine.health().state is State.READY:
                    return Route(model=candidate, deployment=dep, engine=engine)
        first = model.deployments[0]
        return Route(model=model, deployment=first, engine=self.engine(first))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first.

    Without this, a queued or non-streamed request whose client has left would
    still run to its last token and hold the model from everyone behind it.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, EngineError, APIError):
                await task
    if task.cancelled():
        raise ClientDisconnected
    return task.result()


class Started:
    """A generation whose first item has arrived: from here on, bytes may be sent.

    Errors before the first item surface as ``APIError`` from ``start``, so that
    the client gets a proper status instead of a broken stream.
    """

    def __init__(self, first: StreamItem, rest: AsyncGenerator[StreamItem, None]) -> None:
        self._first: StreamItem | None = first
        self._rest = rest

    @classmethod
    async def start(cls, route: Route, request: GenerateRequest, receive: Receive) -> Started:
        stream = route.engine.generate(request)
        try:
            first = await _unless_disconnected(receive, anext(stream))
        except EngineError as exc:
            raise from_engine_error(exc) from None
        except StopAsyncIteration:
            raise APIError(
                500, "the engine ended without a result", code="internal_error"
            ) from None
        except BaseException:
            await stream.aclose()
            raise
        return cls(first, stream)

    async def items(self) -> AsyncGenerator[StreamItem, None]:
        """Every item, the first included; closing this closes the engine stream."""
        async with aclosing(self._rest) as rest:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
                if isinstance(first, Finish):
                    return
            async for item in rest:
                yield item

    async def collect(self, receive: Receive) -> tuple[str, Finish]:
        """The whole answer, for non-streamed responses: the same stream as streaming."""
        return await _unless_disconnected(receive, self._collect())

    async def _collect(self) -> tuple[str, Finish]:
        parts: list[str] = []
        try:
            async for item in self.items():
                if isinstance(item, TextDelta):
                    parts.append(item.text)
                else:
                    return "".join(parts), item
        except EngineError as exc:
            raise from_engine_error(exc) from None
        raise APIError(500, "the engine stream ended without a finish", code="internal_error")


def apply_policy(
    model: ModelSpec, request: GenerateRequest, *, default_max_tokens: int | None = None
) -> GenerateRequest:
    """Fill what the client left out from the model's defaults; enforce its limits.

    A client's own ``max_tokens`` is binding (too large for the context is a 400);
    a default or a limit is only a ceiling on a request that named none.
    """
    defaults, limits = model.defaults, model.limits
    if (
        limits.max_tokens is not None
        and request.max_tokens is not None
        and request.max_tokens > limits.max_tokens
    ):
        raise APIError(
            400,
            f"max_tokens is {request.max_tokens}, but model {model.name!r} allows at most "
            f"{limits.max_tokens}",
            param="max_tokens",
            code="invalid_value",
        )
    soft = defaults.max_tokens if defaults.max_tokens is not None else default_max_tokens
    ceilings = [c for c in (soft, limits.max_tokens) if c is not None]
    budget = request.token_budget
    if request.max_tokens is None and ceilings:
        budget = min(ceilings) if budget is None else min(budget, *ceilings)

    return msgspec.structs.replace(
        request,
        token_budget=budget,
        temperature=pick(request.temperature, defaults.temperature),
        top_p=pick(request.top_p, defaults.top_p),
        top_k=pick(request.top_k, defaults.top_k),
        min_p=pick(request.min_p, defaults.min_p),
        stop=request.stop or defaults.stop or (),
        seed=pick(request.seed, defaults.seed),
        frequency_penalty=pick(request.frequency_penalty, defaults.frequency_penalty),
        presence_penalty=pick(request.presence_penalty, defaults.presence_penalty),
        repetition_penalty=pick(request.repetition_penalty, defaults.repetition_penalty),
    )
