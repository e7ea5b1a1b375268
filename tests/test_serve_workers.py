"""``namelab serve --workers N``: worker processes share one socket, each answers, Ctrl-C stops them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from namelab.cli.parser import build_parser
from namelab.serve.app import WORKER_HEADER
from namelab.serve.listen import free_cores, server_config

SRC = Path(__file__).resolve().parents[1] / "src"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_answer_and_stop_together(tiny_runs: dict[str, Path]):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "namelab", "serve", str(tiny_runs["gru"]), "--port", "0", "--workers", "2"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        for line in server.stdout:  # the parent binds the socket, then prints its port
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if found:
                port = int(found.group(1))
                assert "2 worker processes" in line
                break
        assert port is not None, "the server never printed its address"
        pids: set[int] = set()
        deadline = time.monotonic() + 120  # workers import torch and load the run: slow on a busy machine
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                # a fresh connection each time: the kernel hands it to whichever worker accepts first
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            except httpx.TransportError:
                time.sleep(0.2)  # no worker accepts yet
                continue
            assert response.status_code == 200 and response.json()["status"] == "ok"
            pids.add(int(response.headers[WORKER_HEADER]))
        assert len(pids) == 2 and server.pid not in pids
        answer = httpx.post(f"http://127.0.0.1:{port}/api/predict", json={"names": ["Aeiou"]}, timeout=10)
        assert answer.status_code == 200 and answer.json()["results"][0]["normalized"] == "Aeiou"
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids), "a worker outlived the server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()


def test_workers_default_to_the_free_cores_and_one_keeps_a_single_process():
    args = build_parser().parse_args(["serve", "runs/x"])
    assert args.workers is None  # serve() reads None as free_cores()
    assert build_parser().parse_args(["serve", "runs/x", "--workers", "3"]).workers == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "runs/x", "--workers", "0"])
    assert 1 <= free_cores() <= (os.cpu_count() or 1)
    config = server_config("namelab.serve.listen:app_factory", workers=2)
    assert config.workers == 2 and config.factory
    with pytest.raises(ValueError, match="workers=1"):
        server_config("namelab.serve.listen:app_factory", workers=2, header_timeout=0.5)


def test_a_worker_without_settings_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch):
    from namelab.serve.listen import SETTINGS_ENV, app_factory

    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    with pytest.raises(RuntimeError, match="--workers"):
        app_factory()
