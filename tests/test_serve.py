"""Tests for namelab.serve: the JSON API in-process (TestClient), run discovery and startup errors.

    .venv/bin/python -m pytest tests/test_serve.py -q

The models are the session's tiny separable runs (conftest.py): they really predict
Alpha for "Aeiou", Beta for "Bdkgt" and Gamma for "Lmnrs".
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from namelab import cli
from namelab.inference.load import load_predictor
from namelab.runs.checkpoint import CheckpointError, save_checkpoint, write_manifest
from namelab.serve import (
    MAX_BODY_BYTES,
    MAX_EXPLAIN_CHARACTERS,
    MAX_EXPLAIN_NAMES,
    MAX_NAME_LENGTH,
    MAX_NAMES,
    PredictResponse,
    bind_socket,
    create_app,
    find_runs,
    load_served_models,
    server_config,
)


@pytest.fixture(scope="module")
def served(tiny_runs: dict[str, Path]):
    return load_served_models([tiny_runs["rnn"], tiny_runs["lstm"], tiny_runs["gru"]])


@pytest.fixture(scope="module")
def client(served) -> TestClient:
    return TestClient(create_app(served))


def predict(client: TestClient, **body):
    """POST /api/predict; a 200 answer is checked against the documented response schema."""
    response = client.post("/api/predict", json=body)
    if response.status_code == 200:
        answer = response.json()
        assert PredictResponse.model_validate(answer).model_dump(exclude_none=True) == answer
    return response


# -- successful predictions -----------------------------------------------------------------


def test_one_model_answers_each_name_in_order(client: TestClient, known_names):
    names = ["Lmnrs", "Aeiou", "Bdkgt"]
    response = predict(client, names=names, top_k=2, model="lstm")
    assert response.status_code == 200
    body = response.json()
    assert body["models"] == ["lstm"]
    assert [row["name"] for row in body["results"]] == names
    for row in body["results"]:
        assert row["normalized"] == row["name"]
        assert set(row["predictions"]) == {"lstm"}
        ranked = row["predictions"]["lstm"]
        assert len(ranked) == 2
        assert ranked[0]["language"] == known_names[row["name"]]
        assert ranked[0]["probability"] >= ranked[1]["probability"] > 0
        assert "explanations" not in row and "error" not in row


def test_without_model_every_served_model_answers_keyed_by_name(client: TestClient):
    body = predict(client, names=["Bdkgt"]).json()
    assert body["models"] == ["rnn", "lstm", "gru"]
    predictions = body["results"][0]["predictions"]
    assert list(predictions) == ["rnn", "lstm", "gru"]
    assert {ranked[0]["language"] for ranked in predictions.values()} == {"Beta"}
    assert all(len(ranked) == 3 for ranked in predictions.values())  # default top_k


def test_served_answers_equal_the_predictors(client: TestClient, tiny_runs):
    # The server batches and ranks by its own code path, all models in one request; each
    # model's answers must be its own predictor's.
    names = ["Aeiou", "Bdkgtb", "Lmnrsl", "Xyz", "Ab-cd"]
    served = predict(client, names=names, top_k=3).json()["results"]
    for cell in ("rnn", "lstm", "gru"):
        alone = load_predictor(tiny_runs[cell]).predict(names, top_k=3)
        for ours, theirs in zip(served, alone):
            assert ours["normalized"] == theirs["normalized"]
            ranked = ours["predictions"][cell]
            assert [p["language"] for p in ranked] == [p["language"] for p in theirs["predictions"]], cell
            for p, q in zip(ranked, theirs["predictions"]):
                assert p["probability"] == pytest.approx(q["probability"], abs=1e-5), cell


def test_a_name_without_letters_is_an_error_for_that_name_only(client: TestClient):
    response = predict(client, names=["Aeiou", "1234", "", "Bdkgt"], model="rnn")
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["predictions"]["rnn"][0]["language"] == "Alpha"
    assert results[3]["predictions"]["rnn"][0]["language"] == "Beta"
    for row, sent in ((results[1], "1234"), (results[2], "")):
        assert row["name"] == sent
        assert "no letters" in row["error"]
        assert "predictions" not in row and "normalized" not in row


def test_names_are_normalized_as_the_models_read_them(client: TestClient):
    results = predict(client, names=["Bélanger", "  Ae   Iou  ", "Dvořák"], top_k=1).json()["results"]
    assert [row["normalized"] for row in results] == ["Belanger", "Ae Iou", "Dvorak"]


def test_top_k_is_capped_at_the_number_of_languages(client: TestClient):
    ranked = predict(client, names=["Aeiou"], top_k=50, model="lstm").json()["results"][0]["predictions"]["lstm"]
    assert sorted(p["language"] for p in ranked) == ["Alpha", "Beta", "Gamma"]
    assert sum(p["probability"] for p in ranked) == pytest.approx(1.0, abs=1e-4)


def test_limits_are_inclusive(client: TestClient):
    response = predict(client, names=["Ae"] * (MAX_NAMES - 1) + ["A" * MAX_NAME_LENGTH], top_k=1, model="lstm")
    assert response.status_code == 200
    assert len(response.json()["results"]) == MAX_NAMES


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(served):
    app = create_app(served)
    bodies = [
        {"names": ["Aeiou", "Bdkgt", "Lmnrs"][i % 3 :] + ["Xy" * (i + 1)], "top_k": 1 + i % 3, "model": model}
        for i, model in enumerate(["rnn", "lstm", "gru", None] * 6)
    ]
    bodies.append({"names": ["Bdkgt", "Ae"], "explain": True})

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://namelab.test") as http:
            return await asyncio.gather(*(http.post("/api/predict", json=body) for body in bodies))

    responses = asyncio.run(send_all())
    batcher = app.state.batcher
    assert batcher.passes < len(bodies), "concurrent requests should have been batched together"
    alone = TestClient(create_app(served))  # the same requests one at a time
    for body, response in zip(bodies, responses):
        assert response.status_code == 200, response.text
        expected = alone.post("/api/predict", json=body).json()
        got = response.json()
        assert got["models"] == expected["models"]
        for ours, theirs in zip(got["results"], expected["results"]):
            assert ours["normalized"] == theirs["normalized"]
            assert ours.get("explanations", {}).keys() == theirs.get("explanations", {}).keys()
            for model, ranked in theirs["predictions"].items():
                assert [p["language"] for p in ours["predictions"][model]] == [p["language"] for p in ranked]
                for p, q in zip(ours["predictions"][model], ranked):
                    assert p["probability"] == pytest.approx(q["probability"], abs=1e-5)


# -- explanations (occlusion) ---------------------------------------------------------------


def test_explain_gives_each_characters_drop_for_the_top_language(client: TestClient, served):
    body = predict(client, names=["Bdkgt", "42", "Aeiou"], explain=True).json()
    results = body["results"]
    assert "explanations" not in results[1]
    lstm = next(m for m in served if m.name == "lstm").predictor
    for row in (results[0], results[2]):
        assert set(row["explanations"]) == {"rnn", "lstm", "gru"}
        explanation = row["explanations"]["lstm"]
        assert explanation["language"] == row["predictions"]["lstm"][0]["language"]
        assert explanation["probability"] == pytest.approx(row["predictions"]["lstm"][0]["probability"], abs=1e-6)
        assert "".join(c["char"] for c in explanation["characters"]) == row["normalized"]
        # recompute one drop by hand: the top class's probability with character 2 replaced by "?"
        name = row["normalized"]
        probs = lstm.probabilities([name, name[:2] + "?" + name[3:]])
        top = lstm.labels.index(explanation["language"])
        expected = float(probs[0, top] - probs[1, top])
        assert explanation["characters"][2]["drop"] == pytest.approx(expected, abs=1e-5)


def test_explain_is_limited_in_names(client: TestClient):
    response = predict(client, names=["Ae"] * (MAX_EXPLAIN_NAMES + 1), explain=True)
    assert response.status_code == 422
    assert f"limited to {MAX_EXPLAIN_NAMES} names" in response.json()["detail"]


# -- bad requests: 4xx with a message, never a 500 ------------------------------------------

TOO_BIG = MAX_BODY_BYTES + 1


JSON = {"content-type": "application/json"}
BAD_REQUESTS = [
    pytest.param({"json": {"names": []}}, 422, "names is empty", id="empty-list"),
    pytest.param({"json": {"names": ["Ae"] * (MAX_NAMES + 1)}}, 422, f"send at most {MAX_NAMES}", id="too-many-names"),
    pytest.param(
        {"json": {"names": ["Ae", "A" * (MAX_NAME_LENGTH + 1)]}},
        422,
        f"names[1] is {MAX_NAME_LENGTH + 1} characters long; a name may have at most {MAX_NAME_LENGTH}",
        id="name-too-long",
    ),
    pytest.param(
        {"json": {"names": ["Ae"], "model": "transformer"}},
        422,
        "unknown model 'transformer'; the served models are rnn, lstm, gru",
        id="unknown-model",
    ),
    pytest.param({"json": {"names": "Aeiou"}}, 422, "names: Input should be a valid list", id="names-not-a-list"),
    pytest.param({"json": {"names": ["Ae", 7]}}, 422, "names[1]: Input should be a valid string", id="not-a-string"),
    pytest.param({"json": {"names": ["Ae"], "top_k": 0}}, 422, "top_k: Input should be greater than", id="top-k-0"),
    pytest.param({"json": {"name": ["Ae"]}}, 422, "names: Field required", id="names-missing"),
    pytest.param({"json": {"names": ["Ae"], "topk": 2}}, 422, "topk: Extra inputs are not permitted", id="typo"),
    pytest.param({"json": ["Aeiou"]}, 400, "must be a JSON object", id="body-not-an-object"),
    pytest.param({"content": b'{"names": ["Ae"', "headers": JSON}, 400, "not valid JSON", id="body-not-json"),
    pytest.param(
        {"content": b'{"names": ["Sch\xffmidt"]}', "headers": JSON}, 400, "encoded as UTF-8", id="body-not-utf8"
    ),
    pytest.param(
        {"content": b'{"names": ["Ae"]}', "headers": {"content-type": "text/plain"}},
        400,
        "sent with Content-Type: application/json",
        id="wrong-content-type",
    ),
    pytest.param({}, 400, "the request has no body", id="no-body"),
    pytest.param(
        {"content": b"[" * TOO_BIG, "headers": JSON}, 413, f"{TOO_BIG} bytes (Content-Length)", id="over-limit"
    ),
    # a chunked body declares no length: the bytes read are counted instead
    pytest.param(
        {"content": iter([b" " * 65536] * 3), "headers": JSON}, 413, f"over {MAX_BODY_BYTES} bytes", id="chunked-over"
    ),
]


@pytest.mark.parametrize(("request_kwargs", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_that_says_what_was_wrong(client: TestClient, request_kwargs, status, message):
    response = client.post("/api/predict", **request_kwargs)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert message in detail


def test_the_server_still_answers_after_refusing_a_body(client: TestClient):
    client.post("/api/predict", content=b"x" * TOO_BIG, headers={"content-type": "application/json"})
    results = predict(client, names=["Aeiou"], model="gru").json()["results"]
    assert results[0]["predictions"]["gru"][0]["language"] == "Alpha"


# -- the other routes -------------------------------------------------------------------------


def test_models_lists_labels_size_and_test_metrics(client: TestClient, tiny_runs):
    models = client.get("/api/models").json()["models"]
    assert [m["name"] for m in models] == ["rnn", "lstm", "gru"]
    for m in models:
        run_dir = tiny_runs[m["cell"]]
        meta = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert m["labels"] == ["Alpha", "Beta", "Gamma"]
        assert m["parameters"] == meta["parameters"] > 0
        assert m["hidden_size"] == 16
        assert m["run"] == run_dir.name
        assert m["test"] == {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "n": metrics["n"]}
        history = json.loads((run_dir / "history.json").read_text())
        assert m["best_val_accuracy"] == max(row["val_accuracy"] for row in history)
    # one lead: the best by validation accuracy, the first served of equals
    (lead,) = [m for m in models if m["lead"]]
    best = max(m["best_val_accuracy"] for m in models)
    assert lead == next(m for m in models if m["best_val_accuracy"] == best)


def test_lead_model_ranks_by_validation_and_counts_a_missing_history_last(served):
    from dataclasses import replace

    from namelab.serve.runs import lead_model

    rnn, lstm, gru = (replace(m, best_val_accuracy=v) for m, v in zip(served, (0.5, 0.9, 0.9)))
    assert lead_model([rnn, lstm, gru]) is lstm  # ties: the first served
    assert lead_model([replace(rnn, best_val_accuracy=None), replace(gru, best_val_accuracy=0.1)]).name == "gru"


def test_healthz(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok", "models": ["rnn", "lstm", "gru"]}


def test_page_is_self_contained(client: TestClient):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="name"' in page and "/api/predict" in page and "aria-live" in page
    for external in ("http://", "https://", "src="):
        assert external not in page, f"the page must not load external resources ({external!r} found)"
    for href in re.findall(r'href="([^"]*)"', page):  # links and the favicon: this server only
        assert href.startswith(("/", "#")) and not href.startswith("//"), href
        if href.startswith("/"):
            assert client.get(href).status_code == 200, href
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_openapi_documents_the_api(client: TestClient):
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/models", "/healthz"} <= set(spec["paths"])
    post = spec["paths"]["/api/predict"]["post"]
    assert {"200", "400", "413", "422"} <= set(post["responses"])
    schemas = spec["components"]["schemas"]
    request = schemas["PredictRequest"]
    assert request["examples"][0]["names"]
    for field in ("names", "top_k", "model", "explain"):
        assert request["properties"][field]["description"]
    assert schemas["NameResult"]["properties"]["error"]["description"]


# -- which runs are served -------------------------------------------------------------------


def copy_run(source: Path, target: Path, *, val_accuracy: float, test_accuracy: float) -> Path:
    """A copy of a run whose history and test metrics say what the test needs."""
    shutil.copytree(source, target)
    history = json.loads((target / "history.json").read_text())
    for row in history:
        row["val_accuracy"] = val_accuracy * row["epoch"] / len(history)  # best at the last epoch
    (target / "history.json").write_text(json.dumps(history))
    metrics = json.loads((target / "metrics.json").read_text())
    metrics["accuracy"] = test_accuracy
    (target / "metrics.json").write_text(json.dumps(metrics))
    write_manifest(target)  # the edited files are the run's files now
    return target


@pytest.fixture
def compare_dir(tmp_path: Path, tiny_runs) -> Path:
    root = tmp_path / "compare"
    copy_run(tiny_runs["lstm"], root / "runs" / "lstm-seed0", val_accuracy=0.80, test_accuracy=0.95)
    copy_run(tiny_runs["lstm"], root / "runs" / "lstm-seed1", val_accuracy=0.90, test_accuracy=0.70)
    copy_run(tiny_runs["gru"], root / "runs" / "gru-seed0", val_accuracy=0.85, test_accuracy=0.80)
    copy_run(tiny_runs["rnn"], root / "runs" / "rnn-seed0", val_accuracy=0.60, test_accuracy=0.60)
    (root / "summary.json").write_text("{}")
    return root


def test_compare_folder_serves_the_best_validation_run_of_each_model(compare_dir: Path):
    runs = find_runs(compare_dir)
    # seed1 has the better validation accuracy, seed0 the better test accuracy: validation decides
    assert [r.name for r in runs] == ["rnn-seed0", "lstm-seed1", "gru-seed0"]
    client = TestClient(create_app(load_served_models([compare_dir])))
    models = client.get("/api/models").json()["models"]
    served = [(m["name"], m["run"]) for m in models]
    assert served == [("rnn", "rnn-seed0"), ("lstm", "lstm-seed1"), ("gru", "gru-seed0")]
    assert models[1]["test"]["accuracy"] == 0.70


def test_a_run_folder_is_itself(tiny_runs):
    assert find_runs(tiny_runs["gru"]) == [tiny_runs["gru"]]


def test_runs_sharing_a_cell_are_named_by_folder(tmp_path: Path, tiny_runs):
    a = shutil.copytree(tiny_runs["lstm"], tmp_path / "a" / "lstm-small")
    b = shutil.copytree(tiny_runs["lstm"], tmp_path / "b" / "lstm-small")
    c = shutil.copytree(tiny_runs["lstm"], tmp_path / "lstm-other")
    d = shutil.copytree(tiny_runs["lstm"], tmp_path / "c" / "a" / "lstm-small")
    models = load_served_models([a, b, c, tiny_runs["gru"], d, a])  # the repeated folder is served once
    assert [m.name for m in models] == ["a/lstm-small", "b/lstm-small", "lstm-other", "gru", "a/lstm-small-2"]
    body = predict(TestClient(create_app(models)), names=["Lmnrs"], model="b/lstm-small").json()
    assert body["results"][0]["predictions"]["b/lstm-small"][0]["language"] == "Gamma"


# -- startup errors through the CLI -------------------------------------------------------------


def test_serve_refuses_what_is_not_a_run(tmp_path: Path, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (tmp_path / "file.txt").write_text("not a run")
    for path, message in (
        (tmp_path / "missing", "does not exist"),
        (tmp_path / "file.txt", "is not a folder"),
        (empty, "is neither a run folder"),
    ):
        assert cli.main(["serve", str(path)]) == 1
        err = capsys.readouterr().err
        assert message in err and str(path) in err


def test_serve_refuses_a_damaged_run(tmp_path: Path, tiny_runs, capsys):
    run = shutil.copytree(tiny_runs["rnn"], tmp_path / "rnn")
    (run / "model.safetensors").write_bytes(b"truncated")
    assert cli.main(["serve", str(run)]) == 1
    assert "does not match the checksum" in capsys.readouterr().err


def test_serve_says_when_the_port_is_taken(tiny_runs, capsys):
    threads = torch.get_num_threads()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert cli.main(["serve", str(tiny_runs["rnn"]), "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert torch.get_num_threads() == threads  # nothing was changed for a server that never started


def test_a_compare_folder_without_history_is_refused(compare_dir: Path):
    (compare_dir / "runs" / "gru-seed0" / "history.json").unlink()
    with pytest.raises(CheckpointError, match="history.json is missing"):
        find_runs(compare_dir)


def make_unfinished(run_dir: Path, *, keep_config: bool) -> str:
    """Turn a finished run into one stopped after epoch 2 of 6; returns the resume command."""
    command = f"namelab train --out {run_dir} --resume"
    (run_dir / "manifest.json").unlink()
    if not keep_config:  # a run still in its first epochs has only its checkpoint
        for name in ("config.json", "model.safetensors", "history.json", "metrics.json"):
            (run_dir / name).unlink()
    save_checkpoint(run_dir, {"step": torch.zeros(1)}, {"epoch": 2, "config": {"epochs": 6}, "command": command})
    return command


@pytest.mark.parametrize("keep_config", [True, False])
def test_a_compare_folder_skips_unfinished_runs_and_says_how_to_resume(compare_dir: Path, keep_config, caplog):
    best_lstm = compare_dir / "runs" / "lstm-seed1"
    command = make_unfinished(best_lstm, keep_config=keep_config)
    with caplog.at_level(logging.WARNING, logger="namelab.serve.runs"):
        runs = find_runs(compare_dir)
    assert [r.name for r in runs] == ["rnn-seed0", "lstm-seed0", "gru-seed0"]
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert str(best_lstm) in message and "stopped after epoch 2 of 6" in message and command in message
    models = load_served_models([compare_dir])
    assert [(m.name, m.run_dir.name) for m in models] == [("rnn", "rnn-seed0"), ("lstm", "lstm-seed0"), ("gru", "gru-seed0")]


@pytest.mark.parametrize("keep_config", [True, False])
def test_an_unfinished_run_folder_given_itself_is_refused(tmp_path: Path, tiny_runs, keep_config, capsys):
    run = shutil.copytree(tiny_runs["gru"], tmp_path / "gru")
    command = make_unfinished(run, keep_config=keep_config)
    with pytest.raises(CheckpointError, match="unfinished run") as info:
        find_runs(run)
    assert command in str(info.value)
    assert cli.main(["serve", str(run)]) == 1
    assert command in capsys.readouterr().err


def test_a_compare_folder_of_unfinished_runs_is_refused(compare_dir: Path):
    for run in sorted((compare_dir / "runs").iterdir()):
        make_unfinished(run, keep_config=True)
    with pytest.raises(CheckpointError, match="holds no finished run") as info:
        find_runs(compare_dir)
    assert str(info.value).count("--resume") == 4


def test_a_damaged_history_is_refused_by_its_reader(compare_dir: Path):
    history_path = compare_dir / "runs" / "gru-seed0" / "history.json"
    history = json.loads(history_path.read_text())
    history[-1]["val_accuracy"] = 1.5
    history_path.write_text(json.dumps(history))
    write_manifest(history_path.parent)
    with pytest.raises(CheckpointError, match="val_accuracy must be a number between 0 and 1"):
        find_runs(compare_dir)


def test_a_metrics_file_that_is_no_object_is_refused(tmp_path: Path, tiny_runs):
    run = shutil.copytree(tiny_runs["gru"], tmp_path / "gru")
    (run / "metrics.json").write_text("[0.9]")
    write_manifest(run)
    with pytest.raises(CheckpointError, match="metrics.json must hold a JSON object"):
        load_served_models([run])


# -- a server that one request cannot freeze ------------------------------------------------


HEAVIEST_PLAIN = {"names": ["Aeioubdkgt" * 6 + "Lmnr"] * MAX_NAMES, "top_k": 3}  # 1,000 names of 64 letters


def blocked_batcher(app) -> tuple[threading.Event, threading.Event]:
    """Make the app's model passes wait for ``release``; ``started`` is set when a pass begins."""
    batcher = app.state.batcher
    compute = batcher._compute
    started, release = threading.Event(), threading.Event()

    def waiting_compute(work):
        started.set()
        release.wait(30)  # a bound, so that a failing test cannot hang
        return compute(work)

    batcher._compute = waiting_compute
    return started, release


def test_healthz_answers_while_the_heaviest_request_is_computed(served):
    # The model pass is held until /healthz has answered: on the event loop, it would block
    # /healthz behind it and the heavy request would finish first.
    app = create_app(served)
    started, release = blocked_batcher(app)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://namelab.test", timeout=60) as http:
            heavy = asyncio.create_task(http.post("/api/predict", json=HEAVIEST_PLAIN))
            assert await asyncio.to_thread(started.wait, 30), "the heavy request never reached the model"
            health = await asyncio.wait_for(http.get("/healthz"), timeout=20)
            heavy_was_done = heavy.done()
            release.set()
            return health, heavy_was_done, await heavy

    health, heavy_was_done, heavy = asyncio.run(scenario())
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert not heavy_was_done, "/healthz waited for the model"
    assert heavy.status_code == 200
    assert len(heavy.json()["results"]) == MAX_NAMES


def test_too_much_waiting_work_gets_503_with_retry_after(served):
    app = create_app(served, max_waiting_requests=0.001)  # a fraction of one heavy request may wait
    started, release = blocked_batcher(app)
    body = {"names": ["Aeiou"] * 50}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://namelab.test", timeout=60) as http:
            first = asyncio.create_task(http.post("/api/predict", json=body))  # being computed
            assert await asyncio.to_thread(started.wait, 30)
            second = asyncio.create_task(http.post("/api/predict", json=body))  # waits: nothing else does
            while not app.state.batcher.waiting_work():
                await asyncio.sleep(0.01)
            third = await http.post("/api/predict", json=body)  # over the bound
            release.set()
            return await first, await second, third

    first, second, third = asyncio.run(scenario())
    assert first.status_code == second.status_code == 200
    assert third.status_code == 503
    assert third.headers["retry-after"] == "1"
    assert "retry in a moment" in third.json()["detail"]


def test_the_length_limit_holds_for_the_normalized_name_too(client: TestClient):
    # U+FDFA is one character that transliterates to 29 letters (with spaces): 3 of them make 87.
    results = predict(client, names=["\ufdfa" * 3, "Aeiou"], model="lstm").json()["results"]
    assert f"a name may have at most {MAX_NAME_LENGTH}" in results[0]["error"]
    assert "becomes 8" in results[0]["error"]
    assert results[1]["predictions"]["lstm"][0]["language"] == "Alpha"


def test_explain_is_limited_in_characters(client: TestClient):
    names = ["Aeioubdkgt" * 6 + "Lmnr"] * (MAX_EXPLAIN_CHARACTERS // MAX_NAME_LENGTH + 1)
    response = predict(client, names=names, explain=True)
    assert response.status_code == 422
    assert f"limited to {MAX_EXPLAIN_CHARACTERS} characters" in response.json()["detail"]
    fits = names[: MAX_EXPLAIN_CHARACTERS // MAX_NAME_LENGTH]
    assert predict(client, names=fits, explain=True, model="rnn").status_code == 200


def test_a_lone_surrogate_is_refused_clearly(client: TestClient):
    response = client.post("/api/predict", content=b'{"names": ["Ae", "\\ud800"]}', headers=JSON)
    assert response.status_code == 422
    assert "names[1] holds a lone surrogate (U+D800" in response.json()["detail"]


# Any code point, lone surrogates (JSON can spell them) and characters that normalize to many letters.
ANY_CHARACTER = st.characters(codec=None) | st.integers(0xD800, 0xDFFF).map(chr) | st.sampled_from("\ufdfa\u3392'-?Ae ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.text(ANY_CHARACTER, max_size=70), min_size=1, max_size=4),
    model=st.none() | st.sampled_from(["rnn", "gru"]) | st.text(max_size=5),
    top_k=st.integers(-2, 30),
    explain=st.booleans(),
)
def test_any_strings_get_an_answer_or_a_4xx_never_a_500(client: TestClient, names, model, top_k, explain):
    body = json.dumps({"names": names, "model": model, "top_k": top_k, "explain": explain})  # ASCII: \ud800 survives
    response = client.post("/api/predict", content=body.encode("ascii"), headers=JSON)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code == 200:
        answer = response.json()
        assert PredictResponse.model_validate(answer).model_dump(exclude_none=True) == answer
        # as JSON reads them: a high and a low surrogate side by side spell one astral character
        assert [row["name"] for row in answer["results"]] == json.loads(body)["names"]
    else:
        assert isinstance(response.json()["detail"], str)


def test_head_requests_are_answered(client: TestClient):
    for path in ("/", "/healthz"):
        response = client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""
        assert int(response.headers["content-length"]) > 0


@contextmanager
def live_server(app, **config) -> Iterator[tuple[str, int]]:
    """``app`` under uvicorn, configured as `namelab serve` does, on a free port of 127.0.0.1."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(server_config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def read_until_closed(conn: socket.socket, limit_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (a server that never closes fails the read)."""
    conn.settimeout(limit_s)
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data


@pytest.mark.parametrize(
    ("sent", "what"),
    [
        pytest.param(b"", "headers", id="nothing"),
        pytest.param(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Ty", "headers", id="half-headers"),
        pytest.param(
            b'POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n'
            b'{"names": [',
            "body",
            id="half-body",
        ),
    ],
)
def test_a_half_sent_request_is_cut_off(served, sent: bytes, what: str):
    with live_server(create_app(served), header_timeout=0.5, body_timeout=0.5) as address:
        with socket.create_connection(address, timeout=10) as conn:
            conn.sendall(sent)
            data = read_until_closed(conn)  # the 408 says the deadline, not the client's patience, closed it
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert f"the request {what} did not arrive within 0.5 seconds".encode() in data
        # the server still answers whole requests, on a fresh connection
        with socket.create_connection(address, timeout=10) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = read_until_closed(conn)
        assert data.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in data


def test_keep_alive_requests_are_not_cut_off_between_requests(served):
    # The read deadline covers one request; an answered connection may wait for the next one.
    with live_server(create_app(served), header_timeout=0.5, body_timeout=0.5) as address:
        with socket.create_connection(address, timeout=10) as conn:
            for _ in range(2):
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                head = conn.recv(4096)
                assert head.startswith(b"HTTP/1.1 200 "), head
                time.sleep(0.8)  # longer than the read deadlines, shorter than the keep-alive timeout


# -- idle connections and the request limit ------------------------------------------------

REQUEST_LIMIT = 8  # small, so that a test can fill it; the server's default is limits.MAX_REQUESTS
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD_HEALTHZ = b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def post_predict(body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


def read_answer(conn: socket.socket, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer read off ``conn``, which stays open: status, headers (lowercase names), body."""
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, f"the server closed the connection mid-answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(4096)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def ask(address: tuple[str, int], request: bytes, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """``request`` on a fresh connection, and its answer."""
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(request)
        return read_answer(conn, head_only)


def answers_healthz_and_predictions(address: tuple[str, int]) -> None:
    status, _, body = ask(address, HEALTHZ)
    assert status == 200 and json.loads(body)["status"] == "ok", body
    assert ask(address, HEAD_HEALTHZ, head_only=True)[0] == 200
    status, _, body = ask(address, post_predict({"names": ["Aeiou"], "model": "gru"}))
    assert status == 200 and json.loads(body)["results"][0]["predictions"]["gru"][0]["language"] == "Alpha", body


def test_idle_connections_do_not_starve_healthz_or_predictions(served):
    # uvicorn's limit_concurrency counted open connections, idle ones too, and answered 503 to
    # every request past it, /healthz included, until the idle ones timed out.
    app = create_app(served, max_requests=REQUEST_LIMIT)
    # A long header deadline: the silent connections outlive the test however slow the machine.
    with live_server(app, header_timeout=60) as address, ExitStack() as stack:
        idle = [stack.enter_context(socket.create_connection(address, timeout=10)) for _ in range(REQUEST_LIMIT + 12)]
        # The kernel hands connections over in order: the server holds all of these before the next one.
        answers_healthz_and_predictions(address)
        for conn in idle:  # still open (so they were during the requests above); now idle between requests
            conn.sendall(HEALTHZ)
            assert read_answer(conn)[0] == 200
        answers_healthz_and_predictions(address)


def test_predictions_past_the_request_limit_get_503_and_healthz_still_answers(served):
    app = create_app(served, max_requests=REQUEST_LIMIT)
    started, release = blocked_batcher(app)
    predict_one = post_predict({"names": ["Aeiou"]})
    with live_server(app) as address, ExitStack() as stack:
        held = [stack.enter_context(socket.create_connection(address, timeout=10)) for _ in range(REQUEST_LIMIT)]
        try:
            for conn in held:  # every slot taken by a prediction waiting for the held model pass
                conn.sendall(predict_one)
            assert started.wait(30), "no prediction reached the model"
            deadline = time.monotonic() + 20
            while app.state.slots.held < REQUEST_LIMIT:
                assert time.monotonic() < deadline, f"only {app.state.slots.held} requests in progress"
                time.sleep(0.01)
            status, headers, body = ask(address, predict_one)
            assert status == 503 and headers["retry-after"] == "1"
            assert f"{REQUEST_LIMIT} requests in progress" in json.loads(body)["detail"]
            assert "retry in a moment" in json.loads(body)["detail"]
            assert ask(address, HEALTHZ)[0] == 200  # a full server is busy, not dead
            assert ask(address, HEAD_HEALTHZ, head_only=True)[0] == 200
        finally:
            release.set()
        for conn in held:
            assert read_answer(conn)[0] == 200
        while app.state.slots.held:  # given back just after the answers are sent
            assert time.monotonic() < deadline, f"{app.state.slots.held} slots still held"
            time.sleep(0.01)
        assert ask(address, predict_one)[0] == 200


# -- how sure the answer is: uncertain flag, coverage sets ------------------------------------


def test_answers_are_marked_uncertain_below_min_confidence(served):
    names = ["Aeiou", "Abdl"]
    alone = {m.name: m.predictor.predict(names, top_k=1) for m in served}
    client = TestClient(create_app(served, min_confidence=0.9))
    for sent, threshold in ((None, 0.9), (0.0, 0.0), (1.0, 1.0), (0.6, 0.6)):
        body = {"names": names} if sent is None else {"names": names, "min_confidence": sent}
        results = predict(client, **body).json()["results"]
        for row, i in zip(results, range(len(names))):
            for model, flag in row["uncertain"].items():
                top = alone[model][i]["predictions"][0]["probability"]
                assert flag == (top < threshold), (model, row["name"], top, threshold)
    settings = client.get("/api/models").json()["settings"]
    assert settings["min_confidence"] == 0.9
    assert settings["max_name_length"] == MAX_NAME_LENGTH and settings["max_names"] == MAX_NAMES


def test_min_confidence_out_of_range_is_refused(client: TestClient, served):
    response = predict(client, names=["Ae"], min_confidence=1.5)
    assert response.status_code == 422 and "min_confidence" in response.json()["detail"]
    with pytest.raises(ValueError, match="between 0 and 1"):
        create_app(served, min_confidence=-0.1)


def test_coverage_without_conformal_calibration_is_a_clear_422(tmp_path: Path, tiny_runs):
    # A run written before training calibrated its models: no conformal scores.
    run = shutil.copytree(tiny_runs["rnn"], tmp_path / "rnn-uncalibrated")
    config = json.loads((run / "config.json").read_text())
    del config["calibration"]
    (run / "config.json").write_text(json.dumps(config))
    write_manifest(run)
    client = TestClient(create_app(load_served_models([run, tiny_runs["gru"]])))
    response = predict(client, names=["Aeiou"], coverage=0.9)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "coverage cannot be given by model 'rnn'" in detail and "conformal" in detail
    coverage = {m["name"]: m["coverage"] for m in client.get("/api/models").json()["models"]}
    assert coverage == {"rnn": False, "gru": True}
    assert predict(client, names=["Aeiou"], coverage=0.9, model="gru").status_code == 200


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory: pytest.TempPathFactory, tiny_runs) -> Path:
    run = shutil.copytree(tiny_runs["lstm"], tmp_path_factory.mktemp("calibrated") / "lstm-calibrated")
    config = json.loads((run / "config.json").read_text())
    config["calibration"] = {"temperature": 6.0, "conformal_scores": [0.0] * 50 + [0.8] * 50}
    (run / "config.json").write_text(json.dumps(config))
    write_manifest(run)  # the edited config is the run's own now
    return run


def test_coverage_sets_equal_the_predictors(calibrated_run: Path):
    names = ["Aeiou", "Abdl", "Lmnrsbd"]
    client = TestClient(create_app(load_served_models([calibrated_run])))
    assert client.get("/api/models").json()["models"][0]["coverage"] is True
    results = predict(client, names=names, coverage=0.9, min_confidence=0.7).json()["results"]
    alone = load_predictor(calibrated_run).predict(names, top_k=3, coverage=0.9, min_confidence=0.7)
    for ours, theirs in zip(results, alone):
        assert ours["coverage_set"]["lstm"] == theirs["coverage_set"]
        assert ours["uncertain"]["lstm"] == theirs["uncertain"]
        assert ours["coverage_set"]["lstm"][0] == ours["predictions"]["lstm"][0]["language"]
    assert any(len(row["coverage_set"]["lstm"]) > 1 for row in results)  # the threshold lets more than one in


# -- what the page and the docs need -----------------------------------------------------------


def test_examples_say_whether_the_models_agree(served):
    candidates = ["Aeiou", "Bdkgt", "Lmnrs", "Aeibd", "Lmab", "Dkgto", "Snarl", "Bald", "Tomas"]
    client = TestClient(create_app(served, example_names=candidates))
    examples = client.get("/api/models").json()["examples"]
    assert examples and {e["name"] for e in examples} <= set(candidates)
    for example in examples:
        predictions = predict(client, names=[example["name"]], top_k=1).json()["results"][0]["predictions"]
        tops = {ranked[0]["language"] for ranked in predictions.values()}
        assert example["agree"] == (len(tops) == 1), example


def test_docs_and_redoc_need_no_network(client: TestClient):
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        assert "https://" not in page.text and "http://" not in page.text, path
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets, path
        for asset in assets:
            assert asset.startswith("/"), asset
            assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").status_code == 200


def test_favicon(client: TestClient):
    for path in ("/favicon.svg", "/favicon.ico"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.text.startswith("<svg")


def test_serve_refuses_a_min_confidence_outside_0_1(tiny_runs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", str(tiny_runs["rnn"]), "--min-confidence", "1.5"])
    assert exit_info.value.code == 2
    assert "expected a probability between 0 and 1, got '1.5'" in capsys.readouterr().err
