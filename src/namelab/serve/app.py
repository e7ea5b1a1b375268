"""The FastAPI app: its routes, error answers and the answer to ``POST /api/predict``."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources
from typing import Sequence

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from .. import __version__
from ..explain import occlusion_variants, read_occlusion, variant_starts
from ..predict import prepare
from .batcher import Batcher, Busy, work_of
from .limits import MAX_BODY_BYTES, BodyLimit
from .runs import ServedModel
from .schemas import (
    MAX_EXPLAIN_CHARACTERS,
    MAX_EXPLAIN_NAMES,
    MAX_NAME_LENGTH,
    MAX_NAMES,
    ErrorResponse,
    Health,
    ModelsResponse,
    PredictRequest,
    PredictResponse,
)


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


def create_app(
    models: Sequence[ServedModel], *, max_body_bytes: int = MAX_BODY_BYTES, max_waiting_requests: int = 16
) -> FastAPI:
    """The FastAPI app serving ``models`` (see :func:`load_served_models`).

    ``max_waiting_requests``: how many of the heaviest allowed requests may wait for the
    model at once (lighter ones count for less); past that, ``POST /api/predict`` answers
    503 with ``Retry-After`` rather than letting every client's wait grow.
    """
    if not models:
        raise ValueError("create_app needs at least one model to serve")
    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise ValueError(f"served model names must be unique, got {[m.name for m in models]}")
    page = _page()
    heaviest = work_of(["x" * MAX_NAME_LENGTH] * MAX_NAMES, len(models))
    batcher = Batcher(models, max_waiting=max_waiting_requests * heaviest)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(
        title="namelab",
        version=__version__,
        description="Classify surnames by language with character-level RNN, LSTM and GRU models. "
        "Every error answer is `{\"detail\": message}`.",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.models = list(models)
    app.state.batcher = batcher

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/healthz", response_model=Health, summary="Liveness check")
    @app.head("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        """Answers at once, also while the models are busy: model work runs off the event loop."""
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
            503: {"model": ErrorResponse, "description": "Too much work is waiting; retry after a moment."},
        },
        summary="Rank the languages of names",
    )
    async def predict(body: PredictRequest) -> JSONResponse:
        """Top-k languages of each name, per model, in the order sent.

        A name with no letters, or whose normalized form is over the length limit, gets
        `{"name", "error"}` and the others are still answered.
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
        try:
            return JSONResponse(await answer(batcher, asked, body.names, body.top_k, body.explain))
        except Busy as err:
            raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from None

    return app


async def answer(
    batcher: Batcher, models: Sequence[ServedModel], names: Sequence[str], top_k: int, explain: bool = False
) -> dict:
    """The body of a ``POST /api/predict`` answer: :func:`namelab.predict.prepare`, one batched
    pass per model, then each model's ``Predictor.describe`` of its rows."""
    results, usable, normalized = prepare(names, MAX_NAME_LENGTH)
    model_names = [m.name for m in models]
    if usable:
        if explain:  # each name followed by its occluded copies, all in the same forward pass
            characters = sum(map(len, normalized))
            if characters > MAX_EXPLAIN_CHARACTERS:
                raise HTTPException(
                    422,
                    f"explain is limited to {MAX_EXPLAIN_CHARACTERS} characters per request (once normalized) and "
                    f"these names have {characters}; send fewer or shorter names, or drop explain",
                )
            texts, starts = occlusion_variants(normalized), variant_starts(normalized)
        else:
            texts, starts = normalized, list(range(len(normalized)))
        probs = await batcher.probabilities(texts, model_names)
        rows = [results[i] for i in usable]
        for row in rows:
            row["predictions"] = {}
        for m in models:
            for row, described in zip(rows, m.predictor.describe(probs[m.name][starts], top_k)):
                row["predictions"][m.name] = described["predictions"]
            if explain:
                for row, explanation in zip(rows, read_occlusion(probs[m.name], normalized, m.predictor.labels)):
                    row.setdefault("explanations", {})[m.name] = explanation
    return {"models": model_names, "results": results}
