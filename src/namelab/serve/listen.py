"""Run the app: bind a socket, start uvicorn, and ``serve()`` (what ``namelab serve`` runs)."""

from __future__ import annotations

import gc
import socket
from pathlib import Path
from typing import Sequence

import torch
import uvicorn
from fastapi import FastAPI

from .app import MIN_CONFIDENCE, create_app
from .limits import BODY_TIMEOUT, HEADER_TIMEOUT, ReadTimeoutProtocol
from .runs import load_served_models

KEEP_ALIVE_TIMEOUT = 5  # seconds an idle connection is kept open between requests
# Connections and requests in progress together; beyond, uvicorn answers 503 at once.
MAX_CONNECTIONS = 1000


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), with a clear error if taken."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        # getaddrinfo wraps 70000 to 4464 and overflows on 10**20: refuse what is no port at all.
        raise ValueError(f"--port must be a whole number from 0 to 65535 (0: any free port), got {port!r:.30}")
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        if sock is not None:
            sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port} ({err}); pick another --port or --host") from None
    sock.set_inheritable(True)
    return sock


def server_config(
    app: FastAPI,
    *,
    log_level: str = "warning",
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
) -> uvicorn.Config:
    """uvicorn's settings for ``app``: deadlines for reading requests, a bound on connections, no access log."""
    protocol = type(
        "ReadTimeoutProtocol",
        (ReadTimeoutProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
    # No access log: one line per request costs more than a 10-name prediction.
    return uvicorn.Config(
        app,
        http=protocol,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        limit_concurrency=MAX_CONNECTIONS,
    )


def run_server(app: FastAPI, sock: socket.socket, log_level: str = "warning") -> None:
    """Run ``app`` on an already bound socket until interrupted (uvicorn, one process)."""
    uvicorn.Server(server_config(app, log_level=log_level)).run(sockets=[sock])


def serve(
    paths: Sequence[Path | str], host: str = "127.0.0.1", port: int = 8000, *, min_confidence: float = MIN_CONFIDENCE
) -> None:
    """Load the runs, bind, print the address and serve until Ctrl-C."""
    models = load_served_models(paths)
    app = create_app(models, min_confidence=min_confidence)
    sock = bind_socket(host, port)
    # One intra-op thread: a pass is a few hundred names, too little work to split. With two,
    # the OpenMP workers spin between the many small operations of the time loop and the
    # server answered ten times fewer requests on 2 cores (bench/load.py).
    torch.set_num_threads(1)
    # Everything alive now (torch, the models) lives until exit. Freezing it keeps the
    # collector from re-scanning it in every full collection: without this, those pauses
    # tripled the p99 latency under load (bench/load.py).
    gc.collect()
    gc.freeze()
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    for m in models:
        test = m.test_metrics or {}
        accuracy = f"{test['accuracy']:.3f}" if test.get("accuracy") is not None else "n/a"
        print(f"  {m.name:<12} {m.cell:<5} {m.run_dir}  test accuracy {accuracy}")
    print(f"answers below {min_confidence:.0%} confidence are marked uncertain (--min-confidence)")
    print(f"serving {len(models)} model(s) on http://{shown}:{bound_port}/  (API docs: /docs)", flush=True)
    run_server(app, sock, log_level="info")
