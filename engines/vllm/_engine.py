"""vLLM as an engine: attach to a running server, or launch and supervise one.

Either way requests travel over vLLM's OpenAI-compatible API through the upstream
engine; this adapter adds the process around it and says when it can take them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import ClassVar

import msgspec

from .._contract import (
    Embeddings,
    EmbedRequest,
    Engine,
    EngineSpec,
    GenerateRequest,
    Health,
    ModelInfo,
    State,
    StreamItem,
)
from .._errors import EngineUnavailable, UpstreamError
from .._supervisor import LaunchSpec, ProcessState, Supervisor, free_port, http_url
from ..upstream import UpstreamEngine
from ._command import launch_command, options_of, served_model_name
from ._options import VllmOptions

__all__ = ["VllmEngine"]

log = logging.getLogger("roundhouse.engines.vllm")


def _upstream(name: str, url: str, model: str | None, options: VllmOptions) -> Engine:
    spec = EngineSpec(name=name, url=url, model=model, options=options.client)
    return UpstreamEngine(spec)


class VllmEngine:
    """A vLLM server: attached when the deployment has a ``url``, launched otherwise.

    A launched server runs under a ``Supervisor``; while it starts, or restarts
    after a crash, requests get EngineUnavailable (503) and routing moves on to
    other deployments and fallbacks.
    """

    options_type: ClassVar[type[msgspec.Struct]] = VllmOptions
    # Either `url` or `model` is needed, which a tuple of keys cannot say.
    requires: ClassVar[tuple[str, ...]] = ()
    launch_command = staticmethod(launch_command)

    @staticmethod
    def preflight(spec: EngineSpec) -> str | None:
        """Attached: the server answers. Launched: its command can be found here."""
        if spec.url is not None:
            return UpstreamEngine.preflight(spec)
        try:
            planned = launch_command(spec, port=0)
        except ValueError as exc:
            return str(exc)
        assert planned is not None
        executable = planned[0][0]
        if shutil.which(executable) is None:
            return f"{executable!r} is not on PATH (install vLLM, or set vllm.executable)"
        return None

    def __init__(self, spec: EngineSpec) -> None:
        if spec.url is None and spec.model is None:
            raise ValueError(
                "the vllm engine needs `url` (a running vLLM server) or `model` "
                "(a Hugging Face id or local directory for Roundhouse to launch)"
            )
        self._spec = spec
        self._options = options = options_of(spec)
        self._closed = False
        self._supervisor: Supervisor | None = None
        self._upstream_started = False
        if spec.url is not None:
            launch_command(spec)  # rejects launch settings that attaching would ignore
            self._upstream = _upstream(spec.name, spec.url, spec.model, options)
            return
        port = options.port if options.port is not None else free_port(options.host)
        planned = launch_command(spec, port=port)
        assert planned is not None
        argv, env = planned
        self._supervisor = Supervisor(
            LaunchSpec(
                name=spec.name,
                argv=tuple(argv),
                env=env,
                host=options.host,
                port=port,
                health_path=options.health_path,
                startup_timeout=options.startup_timeout,
                restart_delay=options.restart_delay,
                restart_delay_max=options.restart_delay_max,
                stop_timeout=options.stop_timeout,
            ),
            on_ready=self._on_ready,
        )
        self._upstream = _upstream(
            spec.name, http_url(options.host, port), served_model_name(spec), options
        )

    @property
    def supervisor(self) -> Supervisor | None:
        """The launched server's supervisor; None when attached."""
        return self._supervisor

    async def _on_ready(self) -> None:
        if not self._upstream_started:
            self._upstream_started = True
            await self._upstream.start()

    async def start(self) -> None:
        supervisor = self._supervisor
        if supervisor is None:
            await self._upstream.start()
            return
        await supervisor.start()
        # Back to the gateway once the first launch is decided; later ones go on alone.
        await supervisor.wait_for(
            ProcessState.READY, ProcessState.RESTARTING, ProcessState.FAILED, ProcessState.STOPPED
        )

    async def close(self) -> None:
        self._closed = True
        if self._supervisor is not None:
            await self._supervisor.stop()
        await self._upstream.close()

    def _process_health(self, supervisor: Supervisor) -> tuple[State, str | None]:
        state = supervisor.state
        if self._closed or state is ProcessState.STOPPED:
            return State.CLOSED, None
        if state is ProcessState.FAILED:
            return State.FAILED, supervisor.last_error
        if supervisor.restarts == 0 and state is not ProcessState.RESTARTING:
            return State.LOADING, f"starting {self._options.executable[0]}"
        return (
            State.LOADING,
            f"restarting ({supervisor.restarts} restart(s) so far) after: {supervisor.last_error}",
        )

    def health(self) -> Health:
        upstream = self._upstream.health()
        supervisor = self._supervisor
        if supervisor is None or (supervisor.state is ProcessState.READY and not self._closed):
            return upstream
        state, message = self._process_health(supervisor)
        return Health(
            state=state, message=message, in_flight=upstream.in_flight, waiting=upstream.waiting
        )

    def info(self) -> ModelInfo:
        info = self._upstream.info()
        if info.n_ctx is None and self._options.max_model_len is not None:
            return msgspec.structs.replace(info, n_ctx=self._options.max_model_len)
        return info

    def _unavailable(self) -> EngineUnavailable | None:
        """Why a launched server cannot take requests now; None when it can."""
        supervisor = self._supervisor
        if supervisor is None or (supervisor.state is ProcessState.READY and not self._closed):
            return None
        state, message = self._process_health(supervisor)
        name = self._spec.name
        if state is State.CLOSED:
            return EngineUnavailable(f"model {name} is shut down")
        if state is State.FAILED:
            return EngineUnavailable(f"model {name} failed: {message}")
        return EngineUnavailable(f"model {name} is not up yet: {message}")

    def _check_ready(self) -> None:
        unavailable = self._unavailable()
        if unavailable is not None:
            raise unavailable

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[StreamItem, None]:
        self._check_ready()
        try:
            async with aclosing(self._upstream.generate(request)) as stream:
                async for item in stream:
                    yield item
        except UpstreamError as exc:
            # A connection broken by a server that has since died means "restarting".
            unavailable = self._unavailable()
            if unavailable is None:
                raise
            raise unavailable from exc

    async def embed(self, request: EmbedRequest) -> Embeddings:
        self._check_ready()
        try:
            return await self._upstream.embed(request)
        except UpstreamError as exc:
            # A connection broken by a server that has since died means "restarting".
            unavailable = self._unavailable()
            if unavailable is None:
                raise
            raise unavailable from exc
