"""The OpenAPI 3.1 document: every face's operations, every schema from msgspec.

``msgspec.json.schema_components`` turns the wire types into JSON Schema 2020-12,
which OpenAPI 3.1 takes as is. Types of the same name in two faces (each face has
its ``Message``) get their face's name in front, so the document reads
``AnthropicMessage`` rather than a module path.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from ._operation import Operation

__all__ = ["build_document"]

_FACES = {
    "openai": "OpenAI",
    "responses": "Responses",
    "anthropic": "Anthropic",
    "ollama": "Ollama",
    "llamaserver": "LlamaServer",
    "sakura": "Sakura",
}
_QUALIFIED = re.compile(r"^gateway\.(?:apis\.(?P<face>\w+)\.)?(?:[\w.]+\.)?(?P<name>\w+)$")
_REF = "#/components/schemas/"

_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
_STREAM_NOTE = {
    "text/event-stream": "With `stream: true`: server-sent events, each `data:` one {item}",
    "application/x-ndjson": "With `stream: true` (Ollama's default): one {item} per line",
}


def _short(name: str) -> str:
    match = _QUALIFIED.match(name)
    if match is None:
        return name
    face = match.group("face")
    return (_FACES.get(face, face.title()) if face else "Gateway") + match.group("name")


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key] = _renamed(item, names)
        return out
    if isinstance(value, str) and value.startswith(_REF):
        # A $ref, or a discriminator's mapping value: both name a component.
        name = value[len(_REF) :]
        return _REF + names.get(name, name)
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    return value


class _Schemas:
    """Every type the operations name, generated once, by reference."""

    def __init__(self, types: Sequence[Any]) -> None:
        refs, components = msgspec.json.schema_components(types, ref_template=_REF + "{name}")
        names = {name: _short(name) for name in components}
        if len(set(names.values())) != len(names):
            names = {name: name for name in components}  # a clash: keep them unambiguous
        self.components = {names[n]: _renamed(s, names) for n, s in sorted(components.items())}
        self._refs = {id(t): _renamed(r, names) for t, r in zip(types, refs, strict=True)}

    def of(self, type_: Any) -> dict[str, Any]:
        ref: dict[str, Any] = self._refs[id(type_)]
        return ref


def _types(operations: Iterable[Operation]) -> list[Any]:
    seen: dict[int, Any] = {}
    for op in operations:
        for t in (
            op.body,
            op.response,
            op.stream_item,
            op.errors,
            *(b for _, b in op.other_bodies),
        ):
            if t is not None:
                seen.setdefault(id(t), t)
    return list(seen.values())


def _error_response(status: int, schema: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": http.HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": schema}},
    }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer"},
            }
        }
    return response


def _success(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    response: dict[str, Any] = {"description": http.HTTPStatus(op.status).phrase}
    if op.method == "head":
        return response
    content: dict[str, Any] = {}
    if op.response is not None:
        json = op.media_type == "application/json"
        content[op.media_type] = {"schema": schemas.of(op.response) if json else {"type": "string"}}
    if op.stream is not None:
        item = schemas.of(op.stream_item)
        name = item.get("$ref", "").removeprefix(_REF) or "item"
        note = _STREAM_NOTE[op.stream].format(item=name)
        # Server-sent events are described one event at a time (its `data` the item's
        # JSON); NDJSON one line at a time. x-stream-item names the item's type.
        schema = _SSE_EVENT if op.stream == "text/event-stream" else item
        content[op.stream] = {"schema": {**schema, "description": note}, "x-stream-item": item}
    if content:
        response["content"] = content
    return response


def _operation(op: Operation, schemas: _Schemas, *, secured: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        body["description"] = op.description
    if op.parameters:
        body["parameters"] = [
            {
                "name": p.name,
                "in": "path",
                "required": True,
                "description": p.description,
                "schema": {"type": "string"},
            }
            for p in op.parameters
        ]
    if op.body is not None:
        body["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.of(op.body)}},
        }
    # Routes outside the keys answer neither 401 nor a key's 429; the admin API always
    # needs its key.
    unkeyed = {401, 429} if op.public else set() if secured or op.admin else {401}
    refusals = sorted(set(op.refusals) - unkeyed - {op.status})
    responses = {str(op.status): _success(op, schemas)}
    own = dict(op.other_bodies)
    for status in refusals:
        shape = own.get(status, op.errors)
        responses[str(status)] = _error_response(status, schemas.of(shape))
    body["responses"] = responses
    if op.admin:
        body["security"] = [{"adminBearer": []}]
    elif secured and op.public:
        body["security"] = []
    return body


_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key"},
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "An API key, as Anthropic's clients send it",
    },
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "ROUNDHOUSE_BASIC_AUTH (SakuraLLM's --auth)",
    },
}


_ADMIN_SCHEME = {
    "adminBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "ROUNDHOUSE_ADMIN_KEY, or a key of the keys file with admin: true",
    }
}


def build_document(
    operations: Sequence[Operation], *, version: str, secured: bool
) -> dict[str, Any]:
    """The document for these operations; ``secured``: whether keys are required."""
    schemas = _Schemas(_types(operations))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item = paths.setdefault(op.path, {})
        if op.method in item:
            raise ValueError(f"two operations for {op.method.upper()} {op.path}")
        item[op.method] = _operation(op, schemas, secured=secured)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Roundhouse",
            "version": version,
            "description": (
                "A gateway for open models: the OpenAI, Anthropic, Ollama, llama-server and "
                "SakuraLLM APIs over one registry of models."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {"schemas": schemas.components},
    }
    schemes = dict(_ADMIN_SCHEME) if any(op.admin for op in operations) else {}
    if secured:
        schemes.update(_SECURITY_SCHEMES)
        document["security"] = [{"bearer": []}, {"apiKey": []}, {"basic": []}]
    if schemes:
        document["components"]["securitySchemes"] = schemes
    return document
