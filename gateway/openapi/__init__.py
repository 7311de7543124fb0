"""The OpenAPI document, generated from each face's msgspec wire types."""

from ._document import build_document
from ._envelopes import AnthropicError, OllamaError, OpenAIError
from ._operation import (
    BODY_ERRORS,
    GENERATION_ERRORS,
    OPEN_READ_ERRORS,
    READ_ERRORS,
    Operation,
    PathParameter,
    StreamKind,
)
from ._routes import DOCS_OPERATIONS, docs_routes

__all__ = [
    "BODY_ERRORS",
    "DOCS_OPERATIONS",
    "GENERATION_ERRORS",
    "OPEN_READ_ERRORS",
    "READ_ERRORS",
    "AnthropicError",
    "OllamaError",
    "OpenAIError",
    "Operation",
    "PathParameter",
    "StreamKind",
    "build_document",
    "docs_routes",
]
