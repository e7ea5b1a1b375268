"""Serve trained runs over HTTP: a JSON API and one self-contained web page.

    namelab serve runs/lstm runs/gru --port 8000      # two runs, side by side
    namelab serve out/compare                         # a compare folder: its best run of each model

or, from Python (tests, embedding)::

    app = create_app(load_served_models(["runs/lstm"]))
    TestClient(app).post("/api/predict", json={"names": ["Nakamura"]}).json()

One module per job:

- runs.py: which run folders to serve (a compare folder: its best run of each cell), loaded as ``ServedModel``
- batcher.py: the names of concurrent requests go through each model in one forward pass
- schemas.py: the request and response bodies, and the limits a request must keep
- limits.py: what one client may hold: the body size (ASGI middleware), the time to send a request
- app.py: the FastAPI app, its routes and the answer to ``POST /api/predict``
- listen.py: the socket, uvicorn, and ``serve()`` (what ``namelab serve`` runs)

Routes (the OpenAPI description is at ``/docs`` and ``/openapi.json``):

- ``POST /api/predict``  ``{"names": [...], "top_k": 3, "model": "lstm", "explain": false,
  "min_confidence": 0.5, "coverage": 0.9}``
  -> ``{"models": [...], "results": [{"name", "normalized", "predictions": {model: [...]},
  "uncertain": {model: bool}, "coverage_set": {model: [...]}, "explanations": {model: {...}}}
  | {"name", "error"}]}``, one result per name, in order. Without ``model`` every served model
  answers; every per-model field is keyed by model name. ``min_confidence`` defaults to the
  server's setting; ``coverage`` needs runs with conformal calibration (else 422).
- ``GET /api/models``: the served models (labels, size, test metrics, whether they give
  coverage sets), the server's settings and limits, and example names.
- ``GET /docs``, ``/redoc``: the API's documentation, with Swagger UI and ReDoc served from
  fastapi-offline's copies (no network needed); ``GET /favicon.svg``.
- ``GET /healthz``: ``{"status": "ok", "models": [...]}``, at once even while the models work
  (passes run on a worker thread, one at a time); its ``X-Namelab-Worker`` header is the PID
  of the process that answered (``namelab serve --workers N`` runs N of them on one port).
- ``GET /``: the page (inline CSS and JS, no external resource). ``HEAD`` works on both.

Every error is ``{"detail": "<what was wrong and what to do>"}``: 400 for a body that is
not a JSON object, 413 for a body over the size limit, 422 for a JSON object that breaks
the rules (empty list, too many names, a name too long, unknown model, a lone surrogate, ...),
503 with ``Retry-After`` when too much work already waits, 408 when a request's headers or
body do not arrive in time. A name with no letters, or too long once normalized, is an
error for that name only, inside a 200 answer.
"""

from .app import PAGE_POLICY, answer, create_app
from .batcher import Batcher
from .limits import MAX_BODY_BYTES, BodyLimit
from .listen import bind_socket, run_server, serve, server_config
from .runs import ServedModel, best_val_accuracy, find_runs, load_served_models
from .schemas import (
    MAX_EXPLAIN_CHARACTERS,
    MAX_EXPLAIN_NAMES,
    MAX_NAME_LENGTH,
    MAX_NAMES,
    PredictRequest,
    PredictResponse,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_EXPLAIN_CHARACTERS",
    "MAX_EXPLAIN_NAMES",
    "MAX_NAMES",
    "MAX_NAME_LENGTH",
    "PAGE_POLICY",
    "Batcher",
    "BodyLimit",
    "PredictRequest",
    "PredictResponse",
    "ServedModel",
    "answer",
    "best_val_accuracy",
    "bind_socket",
    "create_app",
    "find_runs",
    "load_served_models",
    "run_server",
    "serve",
    "server_config",
]
