"""Ollama model names (``name:tag``) against registry names, and readiness."""

from __future__ import annotations

from engines import State

from ...dispatch import Dispatcher
from ...errors import APIError
from ...registry import Deployment, ModelSpec

__all__ = ["display_name", "ready_deployment", "reported_name", "resolve"]


def _candidates(name: str) -> list[str]:
    # "smollm2:latest" and "smollm2" are the same model to every Ollama client. Any
    # other tag might be part of a registry name ("qwen2:7b"), so the full name goes
    # first. A colon before the last "/" belongs to a host ("host:5000/m"), not a tag.
    base, sep, tag = name.rpartition(":")
    if sep and base and "/" not in tag:
        return [name, base]
    return [name]


def resolve(dispatcher: Dispatcher, name: str) -> ModelSpec:
    """The registry model behind an Ollama name, or Ollama's own 404."""
    for candidate in _candidates(name):
        try:
            return dispatcher.resolve(candidate)
        except APIError as exc:
            if exc.status != 404:
                raise  # known, but not this caller's (a key's models)
    raise APIError(
        404,
        f"model {_go_quote(name)} not found, try pulling it first",
        param="model",
        code="model_not_found",
    )


def _go_quote(text: str) -> str:
    # Ollama formats this message with Go's %q: double quotes, backslash escapes.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def display_name(model: ModelSpec) -> str:
    """The name listed to clients: with ``:latest`` when the registry name has no tag."""
    last = model.name.rsplit("/", 1)[-1]
    return model.name if ":" in last else f"{model.name}:latest"


def reported_name(requested: str, asked: ModelSpec, served: ModelSpec) -> str:
    """Ollama echoes the name as the client wrote it; a fallback reports its own."""
    return requested if served.name == asked.name else display_name(served)


def ready_deployment(dispatcher: Dispatcher, model: ModelSpec) -> Deployment | None:
    for deployment in model.deployments:
        if dispatcher.slot(deployment).health().state is State.READY:
            return deployment
    return None
