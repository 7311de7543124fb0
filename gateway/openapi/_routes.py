"""``GET /openapi.json`` and the interactive docs (Scalar at ``/docs``, Swagger UI at
``/docs/swagger``), both Litestar's render plugins over our own document."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from ._envelopes import OpenAIError
from ._operation import READ_ERRORS, Operation

__all__ = ["DOCS_OPERATIONS", "docs_routes"]

JSON_PATH = "/openapi.json"


class _Scalar(ScalarRenderPlugin):
    @staticmethod
    def get_openapi_json_route(request: Request[Any, Any, Any]) -> str:  # noqa: ARG004 - the plugin's signature
        return JSON_PATH


class _Swagger(SwaggerRenderPlugin):
    @staticmethod
    def get_openapi_json_route(request: Request[Any, Any, Any]) -> str:  # noqa: ARG004 - the plugin's signature
        return JSON_PATH


def docs_routes(document: dict[str, Any]) -> list[HTTPRouteHandler]:
    encoded = msgspec.json.encode(document)
    scalar, swagger = _Scalar(path="/docs"), _Swagger(path="/docs/swagger")

    @get(JSON_PATH, sync_to_thread=False, media_type="application/json")
    def openapi_json() -> Response[bytes]:
        return Response(content=encoded, media_type="application/json")

    @get("/docs", sync_to_thread=False, media_type="text/html")
    def scalar_page(request: Request[Any, Any, Any]) -> bytes:
        return scalar.render(request, document)

    @get("/docs/swagger", sync_to_thread=False, media_type="text/html")
    def swagger_page(request: Request[Any, Any, Any]) -> bytes:
        return swagger.render(request, document)

    return [openapi_json, scalar_page, swagger_page]


DOCS_OPERATIONS = [
    Operation(
        method="get",
        path=JSON_PATH,
        operation_id="openapiDocument",
        summary="This document",
        tag="Documentation",
        response=dict[str, Any],
        errors=OpenAIError,
        refusals=READ_ERRORS,
        public=True,
    ),
    Operation(
        method="get",
        path="/docs",
        operation_id="docsScalar",
        summary="Interactive API reference (Scalar)",
        tag="Documentation",
        response=str,
        media_type="text/html",
        errors=OpenAIError,
        refusals=READ_ERRORS,
        public=True,
    ),
    Operation(
        method="get",
        path="/docs/swagger",
        operation_id="docsSwagger",
        summary="Interactive API reference (Swagger UI)",
        tag="Documentation",
        response=str,
        media_type="text/html",
        errors=OpenAIError,
        refusals=READ_ERRORS,
        public=True,
    ),
]
