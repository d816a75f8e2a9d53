"""`python -m agent serve` runs the service; `python -m agent seed` loads the runbooks."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import uvicorn

from agent.config import Settings
from agent.logs import configure_logging


def serve(settings: Settings, reload: bool = False) -> None:
    configure_logging(settings.log_level)  # the reloader's own process logs too
    uvicorn.run(
        "agent.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        reload_dirs=["agent"] if reload else None,
        log_config=None,  # our JSON logging, configured by create_app
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


async def seed(settings: Settings) -> list[dict[str, object]]:
    from agent.knowledge.corpus import shipped_documents
    from agent.wiring import build_components

    components = build_components(settings)
    try:
        return await components.service.ingest(shipped_documents())
    finally:
        await components.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the HTTP service")
    run.add_argument("--reload", action="store_true", help="restart on code changes")
    sub.add_parser("seed", help="(re)load the shipped runbooks into the configured store")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        serve(settings, reload=args.reload)
        return 0
    written = asyncio.run(seed(settings))
    json.dump({"documents": written}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
