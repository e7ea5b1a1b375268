"""The FastAPI app: its routes, error answers and the answer to ``POST /api/predict``."""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from importlib import resources
from typing import Sequence

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..inference.base import prepare
from ..inference.explain import occlusion_variants, read_occlusion, variant_starts
from ..inference.priors import PRIORS, TRAIN_PRIOR
from ..inference.schema import DEFAULT_MIN_CONFIDENCE
from ..version import __version__
from .batcher import Batcher, Busy, work_of
from .limits import MAX_BODY_BYTES, MAX_REQUESTS, BodyLimit, RequestLimit, Slots
from .runs import ServedModel, lead_model
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


# What FastAPI says when it cannot even decode the body; the one case it does not pass on
# as a validation error is bytes that are not UTF-8.
_UNPARSED_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """HTTP errors as FastAPI sends them, but a body it could not read says why and what to send."""
    if exc.status_code == 400 and exc.detail == _UNPARSED_BODY:
        detail = (
            "the request body could not be read as text (it is not UTF-8, or not JSON); "
            f"send a JSON object encoded as UTF-8, like {EXAMPLE_BODY}"
        )
        return JSONResponse({"detail": detail}, status_code=400)
    return await http_exception_handler(request, exc)


def _web_file(name: str) -> str:
    return (resources.files("namelab.serve") / "web" / name).read_text(encoding="utf-8")


def _page() -> str:
    return _web_file("index.html")


MIN_CONFIDENCE = DEFAULT_MIN_CONFIDENCE  # the same default as the CLI's, why: namelab.inference.schema
# Surnames of many origins; the page offers those the served models agree on, and some they do not.
EXAMPLE_NAMES = (
    "Nakamura", "Schmidt", "O'Brien", "Dvořák", "Rossi", "García", "Kowalski", "Nguyen", "Papadopoulos",
    "Ivanov", "Dubois", "Kim", "Haddad", "Janssen", "Fernandes", "MacDonald", "Zhang", "Kumar", "Novak",
    "Silva", "Müller", "Costa", "Tanaka", "Horvath", "Abramov", "Murphy", "Khoury", "Lefebvre",
)


def choose_examples(models: Sequence[ServedModel], names: Sequence[str], agreeing: int = 6) -> list[dict]:
    """Up to ``agreeing`` names all models give the same top language (different languages first), then
    up to two they disagree on; ``[{"name", "agree"}]`` in that order."""
    results, usable, normalized = prepare(names, MAX_NAME_LENGTH)
    if not usable:
        return []
    tops = [
        [row["predictions"][0]["language"] for row in m.predictor.describe(m.predictor.probabilities(normalized), 1)]
        for m in models
    ]
    agree, disagree, others, languages = [], [], [], set()
    for i, index in enumerate(usable):
        answers = {top[i] for top in tops}
        if len(answers) > 1:
            disagree.append(results[index]["name"])
        elif not answers & languages:
            languages |= answers
            agree.append(results[index]["name"])
        else:
            others.append(results[index]["name"])
    agree += others  # a language already shown comes after the others
    return [{"name": n, "agree": True} for n in agree[:agreeing]] + [{"name": n, "agree": False} for n in disagree[:2]]


# The page is self-contained; the policy makes the browser enforce it (no request leaves the server's origin).
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


# /docs and /redoc run fastapi-offline's copies of Swagger UI and ReDoc; the policy keeps them from
# reaching further (ReDoc's footer would fetch its logo from a CDN), so they behave the same offline.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)


class DocsPolicy:
    """Add :data:`DOCS_POLICY` to the answers of the documentation pages (other paths pass untouched)."""

    def __init__(self, app: ASGIApp, paths: Sequence[str]):
        self.app = app
        self.paths = set(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", DOCS_POLICY.encode())]
            await send(message)

        await self.app(scope, receive, send_with_policy)


def create_app(
    models: Sequence[ServedModel],
    *,
    min_confidence: float = MIN_CONFIDENCE,
    prior: str = TRAIN_PRIOR,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_waiting_requests: float = 16,
    max_requests: int = MAX_REQUESTS,
    example_names: Sequence[str] = EXAMPLE_NAMES,
) -> FastAPI:
    """The FastAPI app serving ``models`` (see :func:`load_served_models`).

    ``min_confidence``: the default of the request field: below this calibrated
    probability of its top language, a model's answer is marked uncertain.

    ``prior``: the default of the request field (train, uniform, estimate), or a file of
    language shares read here, once per model: the population the answers are for.

    ``max_waiting_requests``: how many of the heaviest allowed requests may wait for the
    model at once (lighter ones count for less); past that, ``POST /api/predict`` answers
    503 with ``Retry-After`` rather than letting every client's wait grow.

    ``max_requests``: how many requests may be in progress at once; past that, every route
    but ``/healthz`` answers 503 with ``Retry-After``. Idle connections do not count.
    """
    _check_served(models, min_confidence, prior)
    heaviest = work_of(["x" * MAX_NAME_LENGTH] * MAX_NAMES, len(models))
    batcher = Batcher(models, max_waiting=max_waiting_requests * heaviest)
    slots = Slots(max_requests)
    app = _new_app(batcher, max_body_bytes, slots)
    app.state.models = list(models)
    app.state.batcher = batcher
    app.state.slots = slots  # the requests in progress
    # The routes are registered in this order, which is also their order in /openapi.json.
    _add_page_routes(app)
    _add_model_routes(app, models, _settings(min_confidence, prior), choose_examples(models, example_names))
    _add_predict_route(app, models, batcher, min_confidence, prior, max_body_bytes)
    return app


def _check_served(models: Sequence[ServedModel], min_confidence: float, prior: str) -> None:
    """Refuse what no request could be answered under; a prior file is read here, once per model."""
    if not models:
        raise ValueError("create_app needs at least one model to serve")
    if len({m.name for m in models}) != len(models):
        raise ValueError(f"served model names must be unique, got {[m.name for m in models]}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence}")
    if prior not in PRIORS:
        for m in models:  # a file: read once, checked against each model's languages
            m.prior = m.predictor.target_prior(prior)


def _new_app(batcher: Batcher, max_body_bytes: int, slots: Slots) -> FastAPI:
    """The app without routes: its error answers, body and request limits and documentation pages' policy."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    # Swagger UI and ReDoc from fastapi-offline's copies of their assets: /docs works without a network.
    app = FastAPIOffline(
        favicon_url="/favicon.svg",
        title="namelab",
        version=__version__,
        description="Classify surnames by language with character-level RNN, LSTM and GRU models. "
        "Every error answer is `{\"detail\": message}`.",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # what FastAPI raises for an unreadable body
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(DocsPolicy, paths=("/docs", "/redoc"))
    app.add_middleware(RequestLimit, slots=slots)  # added last: outermost, so a refusal reads no body
    return app


def _settings(min_confidence: float, prior: str) -> dict:
    """The server's defaults and limits as ``GET /api/models`` reports them (the page reads its limits here)."""
    return {
        "min_confidence": min_confidence,
        "prior": prior if prior in PRIORS else "file",
        "max_names": MAX_NAMES,
        "max_name_length": MAX_NAME_LENGTH,
        "max_explain_names": MAX_EXPLAIN_NAMES,
        "max_explain_characters": MAX_EXPLAIN_CHARACTERS,
    }


def _add_page_routes(app: FastAPI) -> None:
    """``/`` (the page) and its icon, read once: the files do not change while the server runs."""
    page = _page()
    icon = _web_file("favicon.svg")

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/favicon.svg", include_in_schema=False)
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(icon, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


def _add_model_routes(app: FastAPI, models: Sequence[ServedModel], settings: dict, examples: list[dict]) -> None:
    """``/healthz`` and ``GET /api/models``; their answers are built once, as nothing in them changes."""
    names = [m.name for m in models]
    lead = lead_model(models)
    infos = [{**m.info(), "lead": m is lead} for m in models]

    @app.get("/healthz", response_model=Health, summary="Liveness check")
    @app.head("/healthz", include_in_schema=False)
    async def healthz(response: Response) -> dict:
        """Answers at once, also while the models are busy: model work runs off the event loop."""
        response.headers[WORKER_HEADER] = str(os.getpid())  # which worker process answered (serve --workers)
        return {"status": "ok", "models": list(names)}

    @app.get("/api/models", response_model=ModelsResponse, summary="The served models")
    async def list_models() -> dict:
        """Every served model (name, cell, size, labels, validation and test metrics, whether it is the
        `lead`: the best by validation accuracy), the server's settings and limits, and example names."""
        return {"models": infos, "settings": settings, "examples": examples}


def _add_predict_route(
    app: FastAPI,
    models: Sequence[ServedModel],
    batcher: Batcher,
    min_confidence: float,
    prior: str,
    max_body_bytes: int,
) -> None:
    """``POST /api/predict``: the request checked against the served models, then :func:`answer`."""
    by_name = {m.name: m for m in models}

    @app.post(
        "/api/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses={
            400: {"model": ErrorResponse, "description": "The body is not a JSON object."},
            413: {"model": ErrorResponse, "description": f"The body is over {max_body_bytes} bytes."},
            422: {"model": ErrorResponse, "description": "The JSON object breaks a rule (the message says which)."},
            503: {
                "model": ErrorResponse,
                "description": "Too much work is waiting, or too many requests are in progress; retry after a moment.",
            },
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
        asked = _asked_models(body, models, by_name)
        confidence = min_confidence if body.min_confidence is None else body.min_confidence
        population = body.prior or (prior if prior in PRIORS else None)  # None: each model's file prior
        if population not in (None, TRAIN_PRIOR) and any(m.predictor.meta.get("train_prior") is None for m in asked):
            raise HTTPException(422, f"prior {population!r} needs runs that record their training prior; retrain them")
        try:
            content = await answer(
                batcher, asked, body.names, body.top_k, body.explain, confidence, body.coverage, population
            )
        except Busy as err:
            raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from None
        if len(body.names) <= INLINE_NAMES and not body.explain:
            return JSONResponse(content)
        return await asyncio.to_thread(JSONResponse, content)  # encoding a large answer takes a while too


def _asked_models(
    body: PredictRequest, models: Sequence[ServedModel], by_name: dict[str, ServedModel]
) -> list[ServedModel]:
    """The models a request asks for, after the checks that need them (422 on any that fails)."""
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
    if body.coverage is not None:
        for m in asked:
            try:
                m.predictor.coverage_threshold(body.coverage)
            except ValueError as err:
                raise HTTPException(
                    422, f"coverage cannot be given by model {m.name!r}: {err}; send the request without coverage"
                ) from None
    return asked


# Requests with more names than this (or with explain) are prepared and read out on a worker
# thread, like the model pass: normalizing, ranking and encoding 1,000 names on the event loop
# would hold up every other route, /healthz included, for that long.
INLINE_NAMES = 100
WORKER_HEADER = "X-Namelab-Worker"


async def answer(
    batcher: Batcher,
    models: Sequence[ServedModel],
    names: Sequence[str],
    top_k: int,
    explain: bool = False,
    min_confidence: float | None = None,
    coverage: float | None = None,
    prior: str | None = TRAIN_PRIOR,
) -> dict:
    """The body of a ``POST /api/predict`` answer: :func:`namelab.inference.base.prepare`, one batched
    pass per model, then each model's ``Predictor.describe`` of its rows."""
    inline = len(names) <= INLINE_NAMES and not explain
    if inline:
        results, usable, normalized = prepare(names, MAX_NAME_LENGTH)
    else:
        results, usable, normalized = await asyncio.to_thread(prepare, names, MAX_NAME_LENGTH)
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
        probs = await batcher.probabilities(texts, [m.name for m in models])
        rows = [results[i] for i in usable]
        arguments = (models, rows, probs, starts, normalized, top_k, explain, min_confidence, coverage, prior)
        if inline:
            _read_out(*arguments)
        else:
            await asyncio.to_thread(_read_out, *arguments)
    return {"models": [m.name for m in models], "results": results}


def _read_out(
    models: Sequence[ServedModel],
    rows: list[dict],
    probs: dict[str, torch.Tensor],
    starts: list[int],
    normalized: list[str],
    top_k: int,
    explain: bool,
    min_confidence: float | None,
    coverage: float | None,
    prior: str | None,
) -> None:
    """Fill each usable row with every model's answer (in place), under ``prior`` (None: each model's file)."""
    fields = ["predictions"]
    fields += ["uncertain"] if min_confidence is not None else []
    fields += ["unknown_language", "unknown_score"] if any(m.predictor.unknown for m in models) else []
    fields += ["coverage_set"] if coverage is not None else []
    for row in rows:
        for field in fields:
            row[field] = {}
    for m in models:
        trained = probs[m.name][starts]
        target = m.prior if prior is None else m.predictor.target_prior(prior, trained)
        described = m.predictor.describe(
            m.predictor.with_prior(trained, target),
            top_k,
            min_confidence=min_confidence,
            coverage=coverage,
            unknown_scores=m.predictor.unknown_scores(normalized),
            set_probs=trained,
        )
        for row, one in zip(rows, described):
            for field in fields:
                if field in one:
                    row[field][m.name] = one[field]
        if explain:
            for row, explanation in zip(rows, read_occlusion(probs[m.name], normalized, m.predictor.labels)):
                row.setdefault("explanations", {})[m.name] = explanation
