"""`python -m agent serve | seed | healthcheck`: run the service, load the runbooks, probe it."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from types import FrameType
from typing import Any

import httpx
import uvicorn

from agent.config import Settings
from agent.heap import enable_freezing
from agent.logs import configure_logging

STARTUP_FAILURE = 3  # what uvicorn.run exits with when the app cannot start


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """What uvicorn does, minus recording the signal: uvicorn re-raises it once shut down,
        so a SIGTERM that drained cleanly would still exit 143 (and look like a crash)."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C stops waiting for connections
        else:
            self.should_exit = True


def serve(settings: Settings, reload: bool = False) -> int:
    configure_logging(settings.log_level)  # the reloader's own process logs too
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "log_config": None,  # our JSON logging, configured by create_app
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": int(settings.shutdown_grace_seconds),
    }
    if reload:  # development only: uvicorn's reloader supervises a child process
        uvicorn.run("agent.app:create_app", reload=True, reload_dirs=["agent"], **options)
        return 0
    enable_freezing()  # this process is the server: its start-up heap lives as long as it
    server = _Server(uvicorn.Config("agent.app:create_app", **options))
    server.run()
    return 0 if server.started else STARTUP_FAILURE


async def seed(settings: Settings) -> list[dict[str, object]]:
    from agent.knowledge.corpus import shipped_documents
    from agent.wiring import build_components

    components = build_components(settings)
    try:
        return await components.service.ingest(shipped_documents())
    finally:
        await components.aclose()


def healthcheck(settings: Settings) -> int:
    """For container HEALTHCHECKs: the image has no shell and no curl, but it has Python."""
    url = f"http://127.0.0.1:{settings.port}/health"
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"unhealthy: {url} answered {response.status_code}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the HTTP service")
    run.add_argument("--reload", action="store_true", help="restart on code changes")
    sub.add_parser("seed", help="(re)load the shipped runbooks into the configured store")
    sub.add_parser("healthcheck", help="exit 0 when GET /health on this machine answers 200")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        return serve(settings, reload=args.reload)
    if args.command == "healthcheck":
        return healthcheck(settings)
    written = asyncio.run(seed(settings))
    json.dump({"documents": written}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
