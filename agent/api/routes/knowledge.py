"""POST /v1/knowledge/documents."""

from __future__ import annotations

from fastapi import APIRouter, Request

from agent.api.deps import ApiError, components_of
from agent.api.schemas import IngestedDocument, IngestRequest, IngestResponse, errors

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])


@router.post(
    "/documents",
    response_model=IngestResponse,
    responses=errors(400, 401, 409, 413, 422, 429, 431, 500, 503),
)
async def ingest(body: IngestRequest, request: Request) -> IngestResponse:
    """Chunk, embed and store documents. Re-ingesting a document id replaces it."""
    c = components_of(request)
    s = c.settings
    if len(body.documents) > s.max_documents_per_request:
        raise ApiError(
            413,
            "too_many_documents",
            f"{len(body.documents)} documents in one request; the limit is "
            f"MAX_DOCUMENTS_PER_REQUEST={s.max_documents_per_request}",
        )
    for doc in body.documents:
        if len(doc.text) > s.max_document_chars:
            raise ApiError(
                413,
                "document_too_long",
                f"document {doc.title!r} is {len(doc.text)} characters; the limit is "
                f"MAX_DOCUMENT_CHARS={s.max_document_chars}",
            )
    documents = body.documents
    ids = [d.document_id for d in documents]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ApiError(
            409,
            "duplicate_document_ids",
            f"document ids {duplicates} appear more than once (an id defaults to a slug of "
            "`source`, else of `title`); send each document once",
        )
    written = await c.service.ingest(documents)
    return IngestResponse(
        documents=[IngestedDocument(**w) for w in written],
        collection=c.store.collection_name,
        embedder=c.store.embedder.space,
    )
