"""The ``roundhouse`` command: serve, check, models, doctor."""

from __future__ import annotations

import argparse
import errno
import logging
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError

from engines import EngineSpec, Footprint, build_engine, engine_class

from .dispatch import Dispatcher
from .host import parse_memory_budget
from .keys import KeysError, hash_key, new_key
from .registry import ConfigError, Deployment, Registry, load_registry
from .settings import Settings
from .tracing import JsonFormatter, RequestIdFilter

if TYPE_CHECKING:
    import uvicorn

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roundhouse", description="A gateway for open models.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the registry's models over HTTP")
    serve.add_argument("--config", type=Path, help="registry file (ROUNDHOUSE_CONFIG)")
    serve.add_argument("--host", help="address to bind (ROUNDHOUSE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port; 0 picks a free one (ROUNDHOUSE_PORT)")
    check = sub.add_parser("check", help="validate a registry and show what it would serve")
    check.add_argument("file", type=Path)
    check.add_argument(
        "--commands",
        action="store_true",
        help="also print the command line of every server Roundhouse would launch",
    )
    models = sub.add_parser("models", help="list model names, aliases and engines")
    models.add_argument("--config", type=Path, help="registry file (ROUNDHOUSE_CONFIG)")
    doctor = sub.add_parser(
        "doctor", help="what this machine can run: llama.cpp build, CPU, GPUs, deployments"
    )
    doctor.add_argument("--config", type=Path, help="registry file (ROUNDHOUSE_CONFIG)")
    doctor.add_argument(
        "--model", type=Path, help="GGUF for the tiny decode (default: the registry's first)"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument("--quiet", action="store_true", help="print only problems and the verdict")
    keys = sub.add_parser("keys", help="make a key for the keys file (ROUNDHOUSE_KEYS_FILE)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="print a new key, and its entry for the keys file")
    new.add_argument("name", help="the key's name, as /metrics and the admin API show it")
    return parser


def _doctor(args: argparse.Namespace) -> int:
    import msgspec

    from .doctor import diagnose, render

    config = args.config if args.config is not None else _settings(args).config
    report = diagnose(config, model=args.model)
    if args.json:
        print(
            msgspec.json.encode({**msgspec.to_builtins(report), "healthy": report.healthy}).decode()
        )
    else:
        print(render(report, quiet=args.quiet))
    return 0 if report.healthy else 1


def _fail(message: str, code: int = 1) -> int:
    print(f"roundhouse: {message}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key: value
        for key in ("config", "host", "port")
        if (value := getattr(args, key, None)) is not None
    }
    return Settings(**overrides)


def _estimate(dep: Deployment) -> str:
    """The memory estimate the budget will use, for sizing ``memory_budget`` by hand."""
    assert dep.name is not None
    size: int | None
    try:
        if dep.memory is not None:
            size = parse_memory_budget(dep.memory).bytes
        else:
            spec = EngineSpec(
                name=dep.name, path=dep.path, url=dep.url, model=dep.model, options=dep.options
            )
            engine = build_engine(dep.engine, spec)
            size = engine.footprint() if isinstance(engine, Footprint) else None
    except (OSError, ValueError):
        size = None
    return "" if size is None else f" (~{size / 2**20:.0f} MiB loaded)"


def _describe(registry: Registry) -> list[str]:
    lines = []
    if registry.memory_budget is not None:
        lines.append(f"memory_budget: {registry.memory_budget}")
    for model in registry.models:
        aliases = f" (aliases: {', '.join(model.aliases)})" if model.aliases else ""
        lines.append(f"{model.name}{aliases}")
        for dep in model.deployments:
            source = dep.path or dep.url or dep.model or "-"
            lines.append(f"  {dep.name}: {dep.engine} {source}{_estimate(dep)}")
        rules = [
            *(["preload"] if model.preload else []),
            *([f"ttl {model.ttl:g}s"] if model.ttl is not None else []),
            *(["pinned"] if model.pinned else []),
        ]
        lines.append(f"  lifecycle: {', '.join(rules) or 'lazy'}")
        if model.fallbacks:
            lines.append(f"  fallbacks: {', '.join(model.fallbacks)}")
    return lines


LaunchHook = Callable[[EngineSpec], tuple[list[str], dict[str, str]] | None]


def _launch_lines(registry: Registry, file: Path) -> list[str]:
    """Each launched server's command as one shell line, env additions first.

    Engines that launch servers offer ``launch_command(spec)``; calling it also
    checks what the registry's types alone cannot, such as vLLM's url-or-model.
    """
    lines = []
    for i, model in enumerate(registry.models):
        for j, dep in enumerate(model.deployments):
            hook = getattr(engine_class(dep.engine), "launch_command", None)
            if hook is None:
                continue
            assert dep.name is not None
            spec = EngineSpec(
                name=dep.name, path=dep.path, url=dep.url, model=dep.model, options=dep.options
            )
            try:
                planned = cast(LaunchHook, hook)(spec)
            except ValueError as exc:
                raise ConfigError(
                    str(file), None, f"models[{i}].deployments[{j}]", str(exc)
                ) from None
            if planned is not None:
                argv, env = planned
                assigns = [f"{key}={shlex.quote(value)}" for key, value in env.items()]
                lines += [f"  {dep.name}:", f"    {' '.join([*assigns, shlex.join(argv)])}"]
    return lines


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _configure_logging(settings: Settings) -> None:
    """Root logging for the gateway, its engines and uvicorn: every record has its request id."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)


def _run_until_stopped(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve until SIGTERM or SIGINT, then stop in order and return.

    uvicorn handles both signals while it runs (stop accepting, wait up to the grace for
    requests in flight, close the engines), then restores the handlers it found and
    raises the signal again for the program that embeds it. Under Python's defaults that
    turns an orderly stop into a death by SIGTERM (status -15) or a KeyboardInterrupt
    traceback. So the handlers it finds hand the signal to uvicorn: the re-raise lands
    on a server that has already stopped, and a signal that comes before uvicorn takes
    over, while the event loop is set up, still stops it rather than being lost.
    """
    from uvicorn.server import HANDLED_SIGNALS

    previous = {sig: signal.signal(sig, server.handle_exit) for sig in HANDLED_SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    settings = _settings(args)
    _configure_logging(settings)
    registry = load_registry(settings.config)
    # The same checks as `check`, so a deployment that cannot launch fails here, not mid-start.
    _launch_lines(registry, settings.config)
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(
                f"port {settings.port} on {settings.host} is already in use; "
                "choose another with --port (or --port 0 for any free port)"
            )
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    print(f"Roundhouse listening on {url}", flush=True)
    begun = time.monotonic()

    def summary(dispatcher: Dispatcher) -> None:
        lines = [f"Roundhouse ready on {url} ({time.monotonic() - begun:.1f}s)"]
        for name, health in dispatcher.health().items():
            note = f": {health.message}" if health.message else ""
            lines.append(f"  {name}: {health.state.value}{note}")
        models = ", ".join(
            f"{m.name} [{'/'.join(sorted({d.engine for d in m.deployments}))}]"
            for m in dispatcher.registry.models
        )
        lines.append(f"  models: {models}")
        print("\n".join(lines), flush=True)

    try:
        app = create_app(settings, registry=registry, on_ready=summary)
    except KeysError as exc:
        return _fail(f"ROUNDHOUSE_KEYS_FILE: {exc}", 2)
    except ValueError as exc:  # a share of VRAM with no GPU visible, say
        return _fail(f"{settings.config}: memory_budget: {exc}", 2)
    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        # uvicorn types this int but only hands it to asyncio.wait_for, which takes any
        # seconds; 0 makes that time out at once, which cuts what is in flight (None
        # would wait forever).
        timeout_graceful_shutdown=settings.shutdown_grace,  # type: ignore[arg-type]
        log_config=None,
    )
    _run_until_stopped(uvicorn.Server(config), sock)
    return 0


def _new_key(name: str) -> int:
    secret = new_key()
    print(f"# The key for {name}; it is shown this once. Give it to the client.", file=sys.stderr)
    print(secret, file=sys.stderr)
    # The entry goes to stdout, so that `>> keys.yaml` keeps only the hash.
    print(f"  - name: {name}\n    hash: {hash_key(secret)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "keys":
            return _new_key(args.name)
        if args.command == "check":
            registry = load_registry(args.file)
            launches = _launch_lines(registry, args.file)
            print(f"{args.file}: OK, {len(registry.models)} model(s)")
            print("\n".join(_describe(registry)))
            if args.commands:
                print("launch commands:" if launches else "launch commands: none")
                if launches:
                    print("\n".join(launches))
            return 0
        registry = load_registry(_settings(args).config)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return _fail(f"invalid setting ROUNDHOUSE_{where.upper()}: {first['msg']}", 2)
    for model in registry.models:
        engines = ",".join(sorted({d.engine for d in model.deployments}))
        print(f"{model.name}\taliases={','.join(model.aliases) or '-'}\tengines={engines}")
    return 0
