"""GET /docs: Swagger UI from files shipped in the package, not from a CDN.

FastAPI's default page loads its JavaScript and CSS from cdn.jsdelivr.net, so without internet
(offline laptops, clusters without egress) /docs is a blank page. The assets are
swagger-ui-dist's, vendored under agent/api/static/swagger-ui (see SOURCE.md there).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

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


def mount_docs(app: FastAPI) -> None:
    app.mount(
        ASSETS,
        StaticFiles(packages=[("agent.api", "static/swagger-ui")]),
        name="docs-assets",
    )
    app.include_router(router)
