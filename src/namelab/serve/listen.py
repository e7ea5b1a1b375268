"""Run the app: bind a socket, start uvicorn, and ``serve()`` (what ``namelab serve`` runs).

    serve(["runs/lstm"], port=8000)               # one worker process per free core
    serve(["runs/lstm"], port=8000, workers=1)    # one process

With several workers, this process binds the socket and uvicorn's supervisor spawns the
workers, which share it: each builds its own app with :func:`app_factory` (its own models,
batcher and limits, from the settings this process leaves in :data:`SETTINGS_ENV`), so a
heavy request holds up one worker's queue only, and a worker that dies is started again.
``/healthz`` names the process that answered in its ``X-Namelab-Worker`` header.
"""

from __future__ import annotations

import gc
import json
import os
import socket
from pathlib import Path
from typing import Sequence

import torch
import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from ..inference.priors import TRAIN_PRIOR
from .app import MIN_CONFIDENCE, create_app
from .limits import BODY_TIMEOUT, HEADER_TIMEOUT, ReadTimeoutProtocol
from .runs import ServedModel, load_served_models

KEEP_ALIVE_TIMEOUT = 5  # seconds an idle connection is kept open between requests
# The JSON settings ({"paths": [...], "min_confidence": ..., "prior": ...}) that each worker process reads.
SETTINGS_ENV = "NAMELAB_SERVE_SETTINGS"
APP_FACTORY = "namelab.serve.listen:app_factory"
# Seconds a worker may leave the supervisor's ping unanswered before it is killed and replaced:
# uvicorn's default killed workers still importing torch on a busy machine (docs/benchmarks.md).
WORKER_HEALTHCHECK = 30


def free_cores() -> int:
    """The cores this process may run on (its CPU affinity), or every core where that is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    app: FastAPI | str,
    *,
    log_level: str = "warning",
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    workers: int = 1,
) -> uvicorn.Config:
    """uvicorn's settings for ``app``: deadlines for reading requests, no access log.

    ``app`` is the app itself, or with ``workers`` above 1 the import string of a factory
    (:data:`APP_FACTORY`): each worker process builds its own.
    """
    protocol = ReadTimeoutProtocol
    if (header_timeout, body_timeout) != (HEADER_TIMEOUT, BODY_TIMEOUT):
        if workers > 1:  # the settings travel to the workers pickled: only importable classes do
            raise ValueError("read deadlines other than the defaults need workers=1")
        protocol = type(
            "ReadTimeoutProtocol",
            (ReadTimeoutProtocol,),
            {"header_timeout": header_timeout, "body_timeout": body_timeout},
        )
    # No access log: a line per request costs more than a small prediction (docs/benchmarks.md).
    # No limit_concurrency: it counts open connections, idle keep-alive ones too, and past it
    # answers 503 to every request, /healthz included. The app bounds requests in progress
    # instead (limits.RequestLimit, exempting /healthz), and closes connections that send a
    # request too slowly (the read deadlines) or stay idle past the keep-alive timeout.
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=workers,
        http=protocol,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK,
    )


def prepared_app(
    models: Sequence[ServedModel], min_confidence: float = MIN_CONFIDENCE, prior: str = TRAIN_PRIOR
) -> FastAPI:
    """The app of ``models``, with this process set up to serve it (one torch thread, a frozen heap)."""
    # One intra-op thread: a pass is a few hundred names, too little work to split. With more,
    # the OpenMP workers spin between the many small operations of the time loop and the
    # server answers far fewer requests (bench/load.py; docs/benchmarks.md).
    torch.set_num_threads(1)
    app = create_app(models, min_confidence=min_confidence, prior=prior)
    # Everything alive now (torch, the models) lives until exit. Freezing it keeps the
    # collector from re-scanning it in every full collection, whose pauses otherwise show in
    # the tail latency under load (bench/load.py; docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    return app


def app_factory() -> FastAPI:
    """One worker process's app: the runs and settings that ``serve`` left in :data:`SETTINGS_ENV`."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start the workers with `namelab serve --workers N`")
    settings = json.loads(raw)
    return prepared_app(load_served_models(settings["paths"]), settings["min_confidence"], settings["prior"])


def run_server(app: FastAPI, sock: socket.socket, log_level: str = "warning") -> None:
    """Run ``app`` on an already bound socket until interrupted (uvicorn, one process)."""
    uvicorn.Server(server_config(app, log_level=log_level)).run(sockets=[sock])


def serve(
    paths: Sequence[Path | str],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    min_confidence: float = MIN_CONFIDENCE,
    prior: str = TRAIN_PRIOR,
    workers: int | None = None,
) -> None:
    """Load the runs, bind, print the address and serve until Ctrl-C, in ``workers`` processes (default: free cores)."""
    workers = free_cores() if workers is None else workers
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    models = load_served_models(paths)  # here too: a bad run folder fails before any worker starts
    app = prepared_app(models, min_confidence, prior) if workers == 1 else None
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    for m in models:
        test = m.test_metrics or {}
        accuracy = f"{test['accuracy']:.3f}" if test.get("accuracy") is not None else "n/a"
        print(f"  {m.name:<12} {m.cell:<5} {m.run_dir}  test accuracy {accuracy}")
    print(f"answers below {min_confidence:.0%} confidence are marked uncertain (--min-confidence)")
    processes = "1 process" if workers == 1 else f"{workers} worker processes"
    print(f"serving {len(models)} model(s) on http://{shown}:{bound_port}/  (API docs: /docs; {processes})", flush=True)
    if app is not None:
        run_server(app, sock, log_level="info")
        return
    del models  # each worker loads its own
    os.environ[SETTINGS_ENV] = json.dumps(
        {"paths": [str(Path(p).resolve()) for p in paths], "min_confidence": min_confidence, "prior": prior}
    )
    Multiprocess(server_config(APP_FACTORY, log_level="info", workers=workers), sockets=[sock]).run()
