"""What llama-server's introspection endpoints report, read from registry and engines."""

from __future__ import annotations

from typing import Any

from engines import ModelInfo, State

from ...dispatch import Dispatcher, permitted
from ...errors import APIError
from ...health import slot_states
from ...policy import effective_defaults
from ...registry import Deployment, ModelSpec

__all__ = ["model_info", "params", "require_loaded", "slot_id", "slots"]


def require_loaded(dispatcher: Dispatcher) -> None:
    """llama-server answers 503 while it loads; so does the gateway before its first load."""
    if dispatcher.load_seconds is None:
        raise APIError(503, "Loading model", code="model_not_ready")


def _deployments(dispatcher: Dispatcher) -> list[tuple[ModelSpec, Deployment]]:
    return [(m, d) for m in dispatcher.registry.models for d in m.deployments]


def _first_ids(dispatcher: Dispatcher) -> dict[str, int]:
    """Each deployment's first slot id: slots are numbered across the whole registry,
    a deployment that batches taking one id per slot of its engine."""
    ids: dict[str, int] = {}
    next_id = 0
    for _, dep in _deployments(dispatcher):
        ids[dep.name or ""] = next_id
        next_id += max(1, len(dispatcher.slot(dep).health().slots))
    return ids


def slot_id(dispatcher: Dispatcher, deployment: Deployment) -> int:
    """The id of a deployment's first slot (responses do not tell which slot ran them)."""
    return _first_ids(dispatcher)[deployment.name or ""]


def model_info(dispatcher: Dispatcher, model: ModelSpec) -> ModelInfo:
    """Facts from the model's first ready deployment (or its first one, if none is)."""
    slots = [dispatcher.slot(d) for d in model.deployments]
    ready = [s for s in slots if s.health().state is State.READY]
    return (ready or slots)[0].info()


def params(model: ModelSpec) -> dict[str, Any]:
    """The sampling settings a request gets when it names none (None: the engine's own)."""
    d = effective_defaults(model)
    return {
        "n_predict": d.max_tokens if d.max_tokens is not None else -1,
        "temperature": d.temperature,
        "top_k": d.top_k,
        "top_p": d.top_p,
        "min_p": d.min_p,
        "seed": d.seed if d.seed is not None else -1,
        "repeat_penalty": d.repetition_penalty,
        "frequency_penalty": d.frequency_penalty,
        "presence_penalty": d.presence_penalty,
        "stop": list(d.stop or ()),
    }


def slots(dispatcher: Dispatcher, only: ModelSpec | None = None) -> list[dict[str, Any]]:
    """One entry per slot of each ready deployment: the engine's own slots when it
    batches (llamacpp's ``parallel``), else one that runs a request at a time."""
    out: list[dict[str, Any]] = []
    first = _first_ids(dispatcher)
    for model, dep in _deployments(dispatcher):
        if (only is not None and model.name != only.name) or not permitted(model):
            continue
        slot = dispatcher.slot(dep)
        health = slot.health()
        if health.state is not State.READY:
            continue
        cached = [s.cached_tokens for s in health.slots] or [0]
        for index, processing in enumerate(slot_states(health)):
            out.append(
                {
                    "id": first[dep.name or ""] + index,
                    "n_ctx": slot.info().n_ctx,
                    "is_processing": processing,
                    "model": model.name,
                    "deployment": dep.name,
                    "engine": dep.engine,
                    # Tokens of the slot's last prompt and output still in its KV cache.
                    "n_cached": cached[index],
                    "params": params(model),
                }
            )
    return out
