"""Serve trained runs over HTTP: a JSON API and one self-contained web page.

    namelab serve runs/lstm runs/gru --port 8000      # two runs, side by side
    namelab serve out/compare                         # a compare folder: its best run of each model

or, from Python (tests, embedding)::

    app = create_app(load_served_models(["runs/lstm"]))
    TestClient(app).post("/api/predict", json={"names": ["Nakamura"]}).json()

Routes (the OpenAPI description is at ``/docs`` and ``/openapi.json``):

- ``POST /api/predict``  ``{"names": [...], "top_k": 3, "model": "lstm", "explain": false}``
  -> ``{"models": [...], "results": [{"name", "normalized", "predictions": {model: [...]},
  "explanations": {model: {...}}} | {"name", "error"}]}``, one result per name, in order.
  Without ``model`` every served model answers; ``predictions`` is always keyed by model name.
- ``GET /api/models``: the served models, their labels, size and test metrics.
- ``GET /healthz``: ``{"status": "ok", "models": [...]}``.
- ``GET /``: the page (inline CSS and JS, no external resource).

Every error is ``{"detail": "<what was wrong and what to do>"}``: 400 for a body that is
not a JSON object, 413 for a body over the size limit, 422 for a JSON object that breaks
the rules (empty list, too many names, a name too long, unknown model, ...). A name with
no letters is an error for that name only, inside a 200 answer.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .cells import CELLS
from .checkpoint import CONFIG, CheckpointError, read_json
from .data import UNKNOWN, UnusableName, normalize
from .predict import Predictor, ranked

MAX_NAMES = 1000
MAX_NAME_LENGTH = 64
MAX_EXPLAIN_NAMES = 100  # occlusion runs one forward pass per character: keep a request to ~6,400 of them
# 1,000 names of 64 ASCII characters take about 68 KB of JSON: the limit lets every valid request
# through while a runaway body is refused before it is parsed.
MAX_BODY_BYTES = 128 * 1024
HISTORY = "history.json"
METRICS = "metrics.json"


# -- which runs to serve ------------------------------------------------------------------


def _run_cell(run_dir: Path) -> str:
    meta = read_json(run_dir / CONFIG)
    try:
        return str(meta["config"]["model"])
    except (KeyError, TypeError):
        raise CheckpointError(f"{run_dir / CONFIG} has no config.model; the run folder is damaged") from None


def best_val_accuracy(run_dir: Path) -> float:
    """The best validation accuracy in a run's ``history.json`` (the epoch whose weights were kept)."""
    history = read_json(run_dir / HISTORY)
    try:
        return max(float(row["val_accuracy"]) for row in history)
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{run_dir / HISTORY} has no val_accuracy per epoch; the run folder is damaged") from None


def find_runs(path: Path | str) -> list[Path]:
    """The run folders one ``RUN_DIR`` argument stands for.

    A folder with ``config.json`` is one run. A folder without one whose subfolders (one
    or two levels down) hold runs is a compare output: its runs are grouped by cell and
    the one with the best *validation* accuracy of each cell is kept (choosing by test
    accuracy would tune on the test split). Anything else raises :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise CheckpointError(
            f"{path} {what}; give a run folder (written by `namelab train`) or a compare output folder"
        )
    if (path / CONFIG).is_file():
        return [path]
    candidates = sorted({p.parent for p in [*path.glob(f"*/{CONFIG}"), *path.glob(f"*/*/{CONFIG}")]})
    if not candidates:
        raise CheckpointError(
            f"{path} is neither a run folder (it has no {CONFIG}) nor a compare output folder "
            f"(no run folder in its subfolders, two levels down); give a folder written by `namelab train` "
            f"or `namelab compare`"
        )
    by_cell: dict[str, list[Path]] = {}
    for run_dir in candidates:
        by_cell.setdefault(_run_cell(run_dir), []).append(run_dir)
    order = sorted(by_cell, key=lambda cell: (list(CELLS).index(cell) if cell in CELLS else len(CELLS), cell))
    # max() keeps the first of equals, and candidates are sorted: ties go to the first folder by name.
    return [max(by_cell[cell], key=best_val_accuracy) for cell in order]


@dataclass
class ServedModel:
    """One run behind the API: its public name, its predictor and the figures the page shows."""

    name: str
    run_dir: Path
    predictor: Predictor
    test_metrics: dict | None  # accuracy, macro_f1, n from metrics.json; None when the file is absent
    best_val_accuracy: float | None

    @property
    def cell(self) -> str:
        return self.predictor.meta["config"]["model"]

    def info(self) -> dict:
        meta = self.predictor.meta
        return {
            "name": self.name,
            "cell": self.cell,
            "run": self.run_dir.name,
            "hidden_size": meta["config"]["hidden_size"],
            "parameters": meta.get("parameters", self.predictor.model.num_parameters()),
            "labels": list(self.predictor.labels),
            "best_epoch": meta.get("best_epoch"),
            "best_val_accuracy": self.best_val_accuracy,
            "test": self.test_metrics,
        }


def _unique_names(run_dirs: Sequence[Path], cells: Sequence[str]) -> list[str]:
    """The cell name; for runs sharing a cell, the folder name (with its parent's if that is shared too)."""
    cell_counts = Counter(cells)
    folder_counts = Counter(run_dir.name for run_dir in run_dirs)
    names = [
        cell if cell_counts[cell] == 1
        else run_dir.name if folder_counts[run_dir.name] == 1
        else f"{run_dir.parent.name}/{run_dir.name}"
        for run_dir, cell in zip(run_dirs, cells)
    ]
    seen: Counter[str] = Counter()
    unique = []
    for name in names:  # still equal (same parent and folder names): number them
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def load_served_models(paths: Sequence[Path | str]) -> list[ServedModel]:
    """Load every run that ``paths`` stand for (see :func:`find_runs`), in the order given.

    Each model is served with the engine it was trained with: on batches of a few hundred
    names the hand-written cells cost no more CPU than torch's fused layer (measured with
    bench/load.py), since their input projection is a row lookup.
    """
    if not paths:
        raise ValueError("give at least one run folder to serve")
    run_dirs: list[Path] = []
    for path in paths:
        for run_dir in find_runs(path):
            if run_dir.resolve() not in {r.resolve() for r in run_dirs}:
                run_dirs.append(run_dir)
    predictors = [Predictor.from_run(run_dir) for run_dir in run_dirs]
    cells = [p.meta["config"]["model"] for p in predictors]
    models = []
    for name, run_dir, predictor in zip(_unique_names(run_dirs, cells), run_dirs, predictors):
        test = None
        if (run_dir / METRICS).is_file():
            metrics = read_json(run_dir / METRICS)
            test = {key: metrics.get(key) for key in ("accuracy", "macro_f1", "n")}
        best_val = best_val_accuracy(run_dir) if (run_dir / HISTORY).is_file() else None
        models.append(ServedModel(name, run_dir, predictor, test, best_val))
    return models


# -- occlusion ------------------------------------------------------------------------------


def occlusion_variants(normalized: Sequence[str]) -> list[str]:
    """Each name followed by its copies with one character replaced by the unknown symbol."""
    variants: list[str] = []
    for name in normalized:
        variants.append(name)
        variants.extend(name[:i] + UNKNOWN + name[i + 1 :] for i in range(len(name)))
    return variants


def read_occlusion(probs: torch.Tensor, normalized: Sequence[str], labels: Sequence[str]) -> list[dict]:
    """Which characters pushed each name towards its top language.

    ``probs`` are a model's probabilities of :func:`occlusion_variants`. For every
    character: the drop in the top language's probability when that character is replaced
    by the unknown symbol (positive: it supported the top language; negative: it pulled
    away from it). Replacing rather than deleting keeps every other character in place.
    """
    out, row = [], 0
    for name in normalized:
        top = int(probs[row].argmax())
        p_top = float(probs[row, top])
        drops = (p_top - probs[row + 1 : row + 1 + len(name), top]).tolist()
        out.append(
            {
                "language": labels[top],
                "probability": round(p_top, 6),
                "characters": [{"char": ch, "drop": round(d, 6)} for ch, d in zip(name, drops)],
            }
        )
        row += 1 + len(name)
    return out


def occlusion(predictor: Predictor, normalized: Sequence[str]) -> list[dict]:
    """:func:`read_occlusion` of one predictor, computed in one batched pass."""
    return read_occlusion(predictor.probabilities(occlusion_variants(normalized)), normalized, predictor.labels)


class Batcher:
    """Runs the names of concurrent requests through each model in one forward pass.

    A request's names wait for the next pass, which starts on the event loop's next turn
    and takes every request that arrived meanwhile (in particular while the previous pass
    ran): under load the batches grow by themselves, and a lone request waits for
    nothing. One pass of 300 names costs far less than thirty passes of 10.

    The pass runs on the event loop itself. A worker thread was measured to be no faster
    (bench/load.py, 2 cores): the GIL serializes the model's time loop with the request
    handling, and handing the GIL back and forth only adds cost.
    """

    def __init__(self, models: Sequence[ServedModel], chunk: int = 256):
        self.models = {m.name: m for m in models}
        # Names per forward call (the predictor sorts them by length first). From 64 to
        # 1024 the CPU time per name hardly changed; 256 was never worse.
        self.chunk = chunk
        self.pending: list[tuple[list[str], tuple[str, ...], asyncio.Future]] = []
        self.scheduled_on: asyncio.AbstractEventLoop | None = None  # the loop a pass is scheduled on
        self.passes = 0  # forward passes run, and the names they carried: how well requests coalesce
        self.names = 0

    async def probabilities(self, normalized: list[str], model_names: Sequence[str]) -> dict[str, torch.Tensor]:
        """``{model: (N, C) probabilities}`` of already normalized names."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((normalized, tuple(model_names), future))
        if self.scheduled_on is not loop:  # not yet scheduled on this loop (a closed loop's pass never ran)
            self.scheduled_on = loop
            loop.call_soon(self._run_pass, loop)
        return await future

    def _run_pass(self, loop: asyncio.AbstractEventLoop) -> None:
        self.scheduled_on = None
        # A request of another event loop (a test client's, since closed) can never be answered.
        batch = [entry for entry in self.pending if entry[2].get_loop() is loop and not entry[2].done()]
        self.pending = []
        work: dict[str, list[str]] = {}
        for names, model_names, _ in batch:
            for name in model_names:
                work.setdefault(name, []).extend(names)
        if not work:
            return
        self.passes += 1
        self.names += sum(len(names) for names in work.values())
        try:
            probs = {name: self.models[name].predictor.probabilities(names, self.chunk) for name, names in work.items()}
        except Exception as err:  # noqa: BLE001 - handed to every waiting request
            for _, _, future in batch:
                future.set_exception(err)
            return
        offsets = dict.fromkeys(work, 0)
        for names, model_names, future in batch:
            answer = {}
            for name in model_names:
                answer[name] = probs[name][offsets[name] : offsets[name] + len(names)]
                offsets[name] += len(names)
            future.set_result(answer)


# -- request and response schemas ------------------------------------------------------------


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"names": ["Nakamura", "Schmidt", "O'Brien"], "top_k": 3},
                {"names": ["Dvořák"], "top_k": 2, "model": "lstm", "explain": True},
            ]
        },
    )

    names: list[str] = Field(
        description=f"Names to classify: 1 to {MAX_NAMES}, each at most {MAX_NAME_LENGTH} characters. "
        "Results come back in the same order.",
        examples=[["Nakamura", "Schmidt"]],
    )
    top_k: int = Field(
        3, ge=1, description="How many languages to rank per name (capped at the number of languages).", examples=[3]
    )
    model: str | None = Field(
        None,
        description="Name of one served model (see GET /api/models). Omitted: every served model answers. "
        "Either way `predictions` is keyed by model name.",
        examples=["lstm"],
    )
    explain: bool = Field(
        False,
        description="Also return, per model, how much each character supports the top language (occlusion). "
        f"At most {MAX_EXPLAIN_NAMES} names per request with this flag.",
    )

    @field_validator("names")
    @classmethod
    def _check_names(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError("names is empty; send at least one name")
        if len(names) > MAX_NAMES:
            raise ValueError(f"names holds {len(names)} names; send at most {MAX_NAMES} per request")
        for i, name in enumerate(names):
            if len(name) > MAX_NAME_LENGTH:
                raise ValueError(
                    f"names[{i}] is {len(name)} characters long; a name may have at most {MAX_NAME_LENGTH}"
                )
        return names


class LanguageScore(BaseModel):
    language: str = Field(examples=["Japanese"])
    probability: float = Field(ge=0, le=1, examples=[0.97])


class CharacterWeight(BaseModel):
    char: str = Field(description="One character of the normalized name.", examples=["k"])
    drop: float = Field(
        description="Top language's probability minus its probability with this character replaced by the "
        "unknown symbol: positive when the character supports the top language.",
        examples=[0.12],
    )


class Explanation(BaseModel):
    language: str = Field(description="The model's top language for this name.", examples=["Japanese"])
    probability: float = Field(examples=[0.97])
    characters: list[CharacterWeight] = Field(description="One entry per character of `normalized`, in order.")


class NameResult(BaseModel):
    name: str = Field(description="The name as sent.", examples=["Nakamura"])
    normalized: str | None = Field(
        None, description="The ASCII form the models read (absent when `error` is set).", examples=["Nakamura"]
    )
    predictions: dict[str, list[LanguageScore]] | None = Field(
        None, description="Per model name: the top-k languages, most probable first."
    )
    explanations: dict[str, Explanation] | None = Field(None, description="Per model name, when `explain` was set.")
    error: str | None = Field(None, description="Why this name could not be classified (the others still are).")


class PredictResponse(BaseModel):
    models: list[str] = Field(description="The models that answered, in the order of GET /api/models.")
    results: list[NameResult] = Field(description="One entry per name sent, in the same order.")


class TestMetrics(BaseModel):
    accuracy: float | None = Field(description="Accuracy on the run's name-disjoint test split.")
    macro_f1: float | None = Field(description="Macro-averaged F1 on the test split (classes are unbalanced).")
    n: int | None = Field(description="Number of test names.")


class ModelInfo(BaseModel):
    name: str = Field(description="What to pass as `model` to POST /api/predict.", examples=["lstm"])
    cell: str = Field(description="Recurrent cell: rnn, lstm or gru.", examples=["lstm"])
    run: str = Field(description="Name of the run folder served.", examples=["lstm-seed0"])
    hidden_size: int
    parameters: int = Field(description="Number of trained parameters.")
    labels: list[str] = Field(description="The languages this model chooses from.")
    best_epoch: int | None = None
    best_val_accuracy: float | None = Field(None, description="Validation accuracy of the kept weights.")
    test: TestMetrics | None = Field(None, description="Test metrics from the run's metrics.json.")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    models: list[str]


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong with the request and how to fix it.")


# -- the app ---------------------------------------------------------------------------------


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before the app parses them.

    The declared Content-Length is checked first; the bytes actually received are counted
    too, since a chunked body declares no length. Bodies within the limit are buffered
    (they are small) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, size: str) -> None:
        response = JSONResponse(
            {
                "detail": f"the request body is {size}; the limit is {self.max_bytes} bytes: "
                "send fewer names per request"
            },
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send, f"{int(value)} bytes (Content-Length)")
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send, f"over {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _describe(error: dict) -> str:
    """One pydantic error as a sentence: ``names[2]: Input should be a valid string``."""
    if error.get("type") == "value_error" and "ctx" in error:
        return str(error["ctx"]["error"])  # our own validators' messages already say where
    where = ""
    for part in error.get("loc", ())[1:]:  # loc[0] is "body"
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return f"{where}: {error['msg']}" if where else error["msg"]


EXAMPLE_BODY = '{"names": ["Nakamura"], "top_k": 3}'


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 when the body is not a JSON object at all, else 422 with every broken rule in one sentence."""
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "malformed")
            detail = f"the request body is not valid JSON ({reason}); send a JSON object like {EXAMPLE_BODY}"
            return JSONResponse({"detail": detail}, status_code=400)
        if tuple(error.get("loc", ())) == ("body",):  # the body as a whole: absent, or not an object
            if error.get("type") == "missing":
                detail = f"the request has no body; send a JSON object like {EXAMPLE_BODY}"
            else:
                detail = (
                    "the request body must be a JSON object sent with Content-Type: application/json, "
                    f"like {EXAMPLE_BODY}"
                )
            return JSONResponse({"detail": detail}, status_code=400)
    return JSONResponse({"detail": "; ".join(_describe(e) for e in errors)}, status_code=422)


def _page() -> str:
    return (resources.files("namelab") / "web" / "index.html").read_text(encoding="utf-8")


# The page is self-contained; the policy makes the browser enforce it (no request leaves the server's origin).
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

def create_app(models: Sequence[ServedModel], *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app serving ``models`` (see :func:`load_served_models`)."""
    if not models:
        raise ValueError("create_app needs at least one model to serve")
    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise ValueError(f"served model names must be unique, got {[m.name for m in models]}")
    page = _page()
    batcher = Batcher(models)
    app = FastAPI(
        title="namelab",
        version=__version__,
        description="Classify surnames by language with character-level RNN, LSTM and GRU models. "
        "Every error answer is `{\"detail\": message}`.",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.models = list(models)
    app.state.batcher = batcher

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/healthz", response_model=Health, summary="Liveness check")
    async def healthz() -> dict:
        return {"status": "ok", "models": list(by_name)}

    @app.get("/api/models", response_model=ModelsResponse, summary="The served models")
    async def list_models() -> dict:
        """Every served model: its name, cell, size, labels and test metrics."""
        return {"models": [m.info() for m in models]}

    @app.post(
        "/api/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses={
            400: {"model": ErrorResponse, "description": "The body is not a JSON object."},
            413: {"model": ErrorResponse, "description": f"The body is over {max_body_bytes} bytes."},
            422: {"model": ErrorResponse, "description": "The JSON object breaks a rule (the message says which)."},
        },
        summary="Rank the languages of names",
    )
    async def predict(body: PredictRequest) -> JSONResponse:
        """Top-k languages of each name, per model, in the order sent.

        A name with no letters gets `{"name", "error"}` and the others are still answered.
        """
        # The answer is built to the PredictResponse schema (tests/test_serve.py checks every
        # answer against it) and sent as is: validating it again on the way out cost more
        # server time than ranking the names.
        if body.model is None:
            asked = list(models)
        elif body.model in by_name:
            asked = [by_name[body.model]]
        else:
            raise HTTPException(
                422, f"unknown model {body.model!r}; the served models are {', '.join(by_name)} (see GET /api/models)"
            )
        if body.explain and len(body.names) > MAX_EXPLAIN_NAMES:
            raise HTTPException(
                422,
                f"explain is limited to {MAX_EXPLAIN_NAMES} names per request and {len(body.names)} were sent; "
                "send fewer names or drop explain",
            )
        return JSONResponse(await answer(batcher, asked, body.names, body.top_k, body.explain))

    return app


async def answer(
    batcher: Batcher, models: Sequence[ServedModel], names: Sequence[str], top_k: int, explain: bool = False
) -> dict:
    """The body of a ``POST /api/predict`` answer."""
    results: list[dict] = []
    usable: list[dict] = []
    for name in names:
        try:
            row = {"name": name, "normalized": normalize(name)}
            usable.append(row)
        except UnusableName as err:
            row = {"name": name, "error": str(err)}
        results.append(row)
    model_names = [m.name for m in models]
    if usable:
        normalized = [row["normalized"] for row in usable]
        if explain:  # each name followed by its occluded copies, all in the same forward pass
            texts = occlusion_variants(normalized)
            starts = [0]
            for name in normalized[:-1]:
                starts.append(starts[-1] + 1 + len(name))
        else:
            texts, starts = normalized, list(range(len(normalized)))
        probs = await batcher.probabilities(texts, model_names)
        for row in usable:
            row["predictions"] = {}
        for m in models:
            for row, top in zip(usable, ranked(probs[m.name][starts], m.predictor.labels, top_k)):
                row["predictions"][m.name] = top
            if explain:
                explanations = read_occlusion(probs[m.name], normalized, m.predictor.labels)
                for row, explanation in zip(usable, explanations):
                    row.setdefault("explanations", {})[m.name] = explanation
    return {"models": model_names, "results": results}


# -- running it -------------------------------------------------------------------------------


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), with a clear error if taken."""
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


def run_server(app: FastAPI, sock: socket.socket, log_level: str = "warning") -> None:
    """Run ``app`` on an already bound socket until interrupted (uvicorn, one process)."""
    import uvicorn

    # No access log: one line per request costs more than a 10-name prediction.
    config = uvicorn.Config(app, log_level=log_level, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def serve(paths: Sequence[Path | str], host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load the runs, bind, print the address and serve until Ctrl-C."""
    models = load_served_models(paths)
    app = create_app(models)
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
    print(f"serving {len(models)} model(s) on http://{shown}:{bound_port}/  (API docs: /docs)", flush=True)
    run_server(app, sock, log_level="info")
