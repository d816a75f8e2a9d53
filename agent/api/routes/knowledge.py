"""POST /v1/knowledge/documents."""

from __future__ import annotations

from fastapi import APIRouter, Request

from agent.api.deps import ApiError, V1Guard, components_of
from agent.api.schemas import ErrorBody, IngestedDocument, IngestRequest, IngestResponse

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"], dependencies=V1Guard)


@router.post(
    "/documents",
    response_model=IngestResponse,
    responses={401: {"model": ErrorBody}, 413: {"model": ErrorBody}, 503: {"model": ErrorBody}},
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
        raise ApiError(422, "invalid_request", "the same document id appears twice")
    written = await c.service.ingest(documents)
    return IngestResponse(
        documents=[IngestedDocument(**w) for w in written],
        collection=c.store.collection_name,
        embedder=c.store.embedder.space,
    )
