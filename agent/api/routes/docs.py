"""GET /docs: Swagger UI from files shipped in the package, not from a CDN.

FastAPI's default page loads its JavaScript and CSS from cdn.jsdelivr.net, so without internet
(offline laptops, clusters without egress) /docs is a blank page. The assets are
swagger-ui-dist's, vendored under agent/api/static/swagger-ui (see SOURCE.md there). The image
keeps the big ones gzip-compressed only (the Dockerfile compresses them: 1.9 MB of JavaScript
and CSS is 0.5 MB, a share of the image's size budget); they are sent compressed to clients that
accept gzip (every browser) and decompressed for the others.
"""

from __future__ import annotations

import gzip
import stat
from functools import lru_cache
from mimetypes import guess_type

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

SWAGGER_UI_VERSION = "5.35.0"
ASSETS = "/docs/assets"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} - API docs",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


class Assets(StaticFiles):
    """Static files, each either as it is or as `<name>.gz` (then served as `<name>`)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
        found, stat_result = await anyio.to_thread.run_sync(self.lookup_path, path + ".gz")
        if stat_result is None or not stat.S_ISREG(stat_result.st_mode):
            raise HTTPException(404)
        media_type = guess_type(path)[0] or "application/octet-stream"
        vary = {"vary": "accept-encoding"}
        if "gzip" in Headers(scope=scope).get("accept-encoding", ""):
            return FileResponse(
                found,
                media_type=media_type,
                headers={**vary, "content-encoding": "gzip"},
                stat_result=stat_result,
            )
        return Response(_gunzipped(found), media_type=media_type, headers=vary)


@lru_cache(maxsize=8)
def _gunzipped(path: str) -> bytes:
    with gzip.open(path) as file:
        return file.read()


def mount_docs(app: FastAPI) -> None:
    app.mount(
        ASSETS,
        Assets(packages=[("agent.api", "static/swagger-ui")]),
        name="docs-assets",
    )
    app.include_router(router)
