"""The app served by a real uvicorn on a free loopback port, in a thread of the test process:
real sockets and a real event loop, with the app object at hand (its components, its store)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from tests.support.processes import free_port, wait_until

__all__ = ["serving_app"]


@contextmanager
def serving_app(app: FastAPI, ready_path: str = "/health") -> Iterator[str]:
    """Yields the base URL once `ready_path` answers; stops the server (lifespan included)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(base + ready_path, timeout=2).status_code == 200, 30, "the app"
        )
        yield base
    finally:
        server.should_exit = True
        thread.join(30)
