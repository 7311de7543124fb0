"""GET /, /api/version, /api/tags, /api/ps and POST /api/show: what is served.

Everything here is read from the registry and the engines' ``health()`` and
``info()``; nothing is loaded or measured on request.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get, head, post
from litestar.di import NamedDependency

from engines import ModelInfo

from ...dispatch import Dispatcher, permitted
from ...errors import APIError
from ...policy import effective_defaults
from ...registry import Deployment, ModelSpec
from .._common import decode_body
from ._clock import rfc3339
from ._names import display_name, ready_deployment, resolve
from ._wire import ShowBody

__all__ = ["OLLAMA_VERSION", "list_running", "list_tags", "probe", "probe_head", "show", "version"]

# Clients compare this with Ollama releases to switch features on (structured
# outputs need 0.5 or later, streamed tool calls 0.8, `think` 0.9), so it must look
# like an Ollama version, not ours.
OLLAMA_VERSION = "0.9.0"

_show_decoder = msgspec.json.Decoder(ShowBody)
# What Ollama reports for a model kept loaded forever (keep_alive -1): now plus the
# longest Go duration. Models here stay loaded until the gateway stops.
_FOREVER = timedelta(microseconds=(2**63 - 1) // 1000)
_QUANT = re.compile(r"(?i)(?<![a-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32)(?![a-z0-9])")


def _human(count: int) -> str:
    # Ollama's parameter_size style: "8.0B", "134.52M", "7B".
    for unit, size, digits in (("B", 10**9, 1), ("M", 10**6, 2), ("K", 10**3, 0)):
        if count >= size:
            number = count / size
            return f"{number:.0f}{unit}" if number.is_integer() else f"{number:.{digits}f}{unit}"
    return str(count)


def _file(deployment: Deployment) -> Path | None:
    path = Path(deployment.path) if deployment.path else None
    return path if path is not None and path.is_file() else None


class _Facts:
    """What is known about one model: from its serving deployment and its file."""

    def __init__(self, dispatcher: Dispatcher, model: ModelSpec) -> None:
        self.model = model
        self.deployment = ready_deployment(dispatcher, model) or model.deployments[0]
        self.info: ModelInfo = dispatcher.slot(self.deployment).info()
        self.file = _file(self.deployment)
        stat = self.file.stat() if self.file is not None else None
        # On disk when there is a file (as Ollama's tags report), else in memory.
        self.size = stat.st_size if stat is not None else (self.info.size or 0)
        when = stat.st_mtime if stat is not None else dispatcher.created
        self.modified_at = rfc3339(datetime.fromtimestamp(when, UTC))

    @property
    def digest(self) -> str:
        # Identifies the registry entry, not the weights: hashing a multi-gigabyte
        # file on every listing would cost more than the answer is worth.
        where = [(d.engine, d.path, d.url, d.model) for d in self.model.deployments]
        return hashlib.sha256(msgspec.json.encode([self.model.name, where])).hexdigest()

    def details(self) -> dict[str, Any]:
        path = self.deployment.path or ""
        quant = _QUANT.search(Path(path).name) if path else None
        return {
            "parent_model": "",
            "format": "gguf" if path.lower().endswith(".gguf") else "",
            # The architecture lives in the engine's metadata, which the contract
            # does not expose.
            "family": "",
            "families": [],
            "parameter_size": _human(self.info.n_params) if self.info.n_params else "",
            "quantization_level": quant.group(1).upper() if quant else "",
        }

    def listing(self) -> dict[str, Any]:
        name = display_name(self.model)
        return {
            "name": name,
            "model": name,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": self.details(),
        }

    def parameters(self) -> list[tuple[str, Any]]:
        d = effective_defaults(self.model)
        pairs: list[tuple[str, Any]] = [
            ("num_ctx", self.info.n_ctx),
            ("num_predict", d.max_tokens),
            ("temperature", d.temperature),
            ("top_p", d.top_p),
            ("top_k", d.top_k),
            ("min_p", d.min_p),
            ("seed", d.seed),
            ("repeat_penalty", d.repetition_penalty),
            ("frequency_penalty", d.frequency_penalty),
            ("presence_penalty", d.presence_penalty),
        ]
        pairs += [("stop", msgspec.json.encode(s).decode()) for s in d.stop or ()]
        return [(k, v) for k, v in pairs if v is not None]

    def model_info(self) -> dict[str, Any]:
        info = self.info
        facts: dict[str, Any] = {
            "general.parameter_count": info.n_params,
            # The context a request can use here, which clients size prompts by.
            "roundhouse.context_length": info.n_ctx,
            "roundhouse.training_context_length": info.n_ctx_train,
            "roundhouse.embedding_length": info.n_embd,
            "roundhouse.vocab_size": info.n_vocab,
            "roundhouse.engines": sorted({d.engine for d in self.model.deployments}),
            "roundhouse.aliases": list(self.model.aliases),
        }
        return {k: v for k, v in facts.items() if v is not None}


def _modelfile(facts: _Facts, parameters: list[tuple[str, Any]]) -> str:
    dep = facts.deployment
    source = dep.path or " ".join(x for x in (dep.url, dep.model) if x) or dep.engine
    lines = [
        "# Served by Roundhouse from its registry: not a Modelfile `ollama create` can build.",
        f"FROM {source}",
        *(f"PARAMETER {k} {v}" for k, v in parameters),
    ]
    return "\n".join(lines) + "\n"


_BROWSER_ROOT = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Roundhouse</title>'
    b'</head><body><p>Ollama is running.</p><p><a href="/ui/">Open the Roundhouse console'
    b'</a> &middot; <a href="/docs">API reference</a></p></body></html>'
)


@get("/", sync_to_thread=False)
def probe(request: Request[Any, Any, Any]) -> Response[bytes]:
    # Clients check this exact text to decide that an Ollama server is listening; a
    # browser (which asks for HTML first) gets a link to the console as well.
    accept = request.headers.get("accept", "")
    if accept.startswith("text/html") or "application/xhtml+xml" in accept:
        return Response(_BROWSER_ROOT, media_type="text/html")
    return Response(b"Ollama is running", media_type="text/plain")


@head("/", sync_to_thread=False)
def probe_head() -> None:
    return None


@get("/api/version", sync_to_thread=False)
def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION}


@get("/api/tags", sync_to_thread=False)
def list_tags(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    # Aliases resolve but are not listed: clients would show every model twice.
    # A key sees the models it may use.
    models = [m for m in dispatcher.registry.models if permitted(m)]
    return {"models": [_Facts(dispatcher, m).listing() for m in models]}


@get("/api/ps", sync_to_thread=False)
def list_running(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    now = datetime.now(UTC)
    running = []
    for model in dispatcher.registry.models:
        deployment = ready_deployment(dispatcher, model) if permitted(model) else None
        if deployment is None:
            continue
        # When the model's ttl would unload it if no request came (never, without one).
        left = _FOREVER
        if model.ttl is not None and not model.pinned:
            idle = dispatcher.slot(deployment).idle_seconds()
            left = timedelta(seconds=max(0.0, model.ttl - idle))
        expires_at = rfc3339(now + left)
        facts = _Facts(dispatcher, model)
        running.append(
            {
                **facts.listing(),
                # Loaded memory, as Ollama reports it: the estimate counts the KV cache
                # of every slot; without one, the weights.
                "size": dispatcher.slot(deployment).estimate or facts.info.size or facts.size,
                "expires_at": expires_at,
                # Engines do not report where weights live; 0 means "not known".
                "size_vram": 0,
                "context_length": facts.info.n_ctx or 0,
            }
        )
    return {"models": running}


@post("/api/show", status_code=200)
async def show(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[bytes]:
    body = decode_body(await request.body(), _show_decoder)
    name = body.model or body.name
    if not name:
        raise APIError(400, "model is required", param="model")
    facts = _Facts(dispatcher, resolve(dispatcher, name))
    parameters = facts.parameters()
    payload = {
        "modelfile": _modelfile(facts, parameters),
        "parameters": "\n".join(f"{k:<30} {v}" for k, v in parameters),
        # The chat template is the engine's (GGUF metadata or registry option) and
        # is applied by the engine; the contract does not hand it out.
        "template": "",
        "details": facts.details(),
        "model_info": facts.model_info(),
        # Every engine takes tools (the in-process one through its generic format
        # when the template knows none); whether a model thinks is not known here.
        "capabilities": ["completion", "tools"],
        "modified_at": facts.modified_at,
    }
    return Response(content=msgspec.json.encode(payload), media_type="application/json")
