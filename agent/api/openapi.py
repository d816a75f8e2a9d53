"""The OpenAPI document as this deployment enforces it: limits that are settings
(MAX_QUERY_CHARS, MAX_DOCUMENT_CHARS, MAX_DOCUMENTS_PER_REQUEST) are stated in the schema, so a
request the document calls valid is one the service accepts."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from agent.config import Settings


def state_runtime_limits(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document["components"]["schemas"]
            schemas["InferRequest"]["properties"]["query"]["maxLength"] = settings.max_query_chars
            schemas["DocumentIn"]["properties"]["text"]["maxLength"] = settings.max_document_chars
            documents = schemas["IngestRequest"]["properties"]["documents"]
            documents["maxItems"] = settings.max_documents_per_request
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
