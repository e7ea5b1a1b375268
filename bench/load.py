"""Load benchmark of `namelab serve`: requests per second and latency under concurrency.

    python bench/load.py --run runs/lstm                    # 3 rounds of 5,000 requests, 32 in flight
    python bench/load.py --requests 2000 --concurrency 16   # no --run: trains a quick LSTM first
    python bench/load.py --run runs/lstm --client httpx     # cross-check with httpx's client
    python bench/load.py --run runs/lstm --heavy 5          # /healthz while the heaviest requests run
    python bench/load.py --run runs/lstm --workers 1,2      # one process, then two workers, side by side

Starts ``namelab serve`` in a subprocess on 127.0.0.1 (any free port), warms it up, then
sends ``--requests`` POST /api/predict requests of ``--names`` names each, at most
``--concurrency`` in flight. Prints, per round and as the median of the rounds, requests/s,
names/s, p50 and p99 latency, the error count and the CPU time spent per request by the
server and by the client. Then it sends the heaviest requests the server accepts, ``--heavy``
times each, while polling ``/healthz``, and prints how long ``/healthz`` took meanwhile.
All of it is done for each ``--workers`` count (``namelab serve --workers N``; default: 1
and one per free core): the servers run side by side, rounds alternate between them, and
the medians are printed side by side with the ratio of each count's requests/s to the first's. The server's CPU time is
that of its whole process tree (the workers included). All of it is written to
``bench/load_results.json``. Exits 1 if any
request failed (a status other than 200, or an answer without one result per name).

The client shares the machine with the server, so it is made cheap: plain HTTP/1.1 over
asyncio streams with keep-alive (``--client raw``, about a tenth of httpx's CPU per
request). CPU milliseconds per request do not depend on what else runs on the machine;
rates and latencies do: check that it is idle (``uptime``) before quoting them. The load
average at the start is written with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

# Surnames of many origins; each request draws --names of them. Spellings the model does
# not know are fine: the server's work per name does not depend on the answer.
NAMES = (
    "Nakamura Schmidt O'Brien Dvořák Rossi García Kowalski Nguyen Papadopoulos Ivanov Müller Dubois "
    "Yamamoto Fernandes Kim Novak Smith Jones MacDonald Haddad Khoury Wang Li Zhang Chen Moreau Bianchi "
    "Van der Berg Janssen Svoboda Horváth Tanaka Suzuki Abramov Popescu Lefebvre González Silva Pereira "
    "Costa Romano Ricci Kuznetsov Sokolov Fitzgerald Murphy Kelly Walsh Wagner Becker Hoffmann Nowak"
).split()

RESULTS = Path(__file__).with_name("load_results.json")
PATH = "/api/predict"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between order statistics."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds(pid: int | None = None) -> float | None:
    """User + system CPU time of a process (this one by default); None where /proc is absent."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of process ``pid`` and of every process below it (a server's workers); None without /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier and child not in tree]
        tree.update(children)
        frontier = children
    times = [cpu_seconds(member) for member in tree]
    return None if times[0] is None else sum(t for t in times if t is not None)


def make_bodies(count: int, names_per_request: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        json.dumps({"names": rng.choices(NAMES, k=names_per_request), "top_k": 3}).encode("utf-8")
        for _ in range(count)
    ]


def check_answer(status: int, body: bytes, names_per_request: int) -> str | None:
    """None for a good answer, else what was wrong with it."""
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    try:
        results = json.loads(body)["results"]
    except (ValueError, KeyError, TypeError) as err:
        return f"unreadable answer ({err}): {body[:200]!r}"
    if len(results) != names_per_request:
        return f"{len(results)} results for {names_per_request} names"
    return None


class RawConnection:
    """One keep-alive HTTP/1.1 connection: POST a JSON body, read status and body.

    Enough HTTP for this server's answers (they always carry Content-Length); a closed
    connection is reopened for the next request.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        try:
            self.writer.write(head + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"connection" and value.strip().lower() == b"close":
                    close = True
            data = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def send_all(
    base_url: str, bodies: list[bytes], concurrency: int, names_per_request: int, client: str
) -> dict:
    """Send every body, ``concurrency`` at a time; return rates, latency percentiles and errors."""
    latencies: list[float] = []
    errors: list[str] = []
    next_index = 0
    url = urlsplit(base_url)

    async def worker(post) -> None:
        nonlocal next_index
        while next_index < len(bodies):
            body = bodies[next_index]
            next_index += 1  # no await in between: the asyncio workers cannot race here
            start = time.perf_counter()
            try:
                status, data = await post(body)
                error = check_answer(status, data, names_per_request)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, httpx.HTTPError) as err:
                error = f"{type(err).__name__}: {err}"
            latencies.append((time.perf_counter() - start) * 1000)
            if error:
                errors.append(error)

    start = time.perf_counter()
    if client == "raw":
        connections = [RawConnection(url.hostname or "127.0.0.1", url.port or 80) for _ in range(concurrency)]
        try:
            await asyncio.gather(*(worker(lambda body, c=c: c.post(PATH, body)) for c in connections))
        finally:
            for connection in connections:
                connection.close()
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as http:

            async def post(body: bytes) -> tuple[int, bytes]:
                response = await http.post(PATH, content=body, headers=headers)
                return response.status_code, response.content

            await asyncio.gather(*(worker(post) for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return {
        "requests": len(bodies),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(bodies) / seconds, 1),
        "names_per_s": round(len(bodies) * names_per_request / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def machine() -> dict:
    """The machine's facts as every benchmark records them (namelab.runs.env)."""
    from namelab.runs.env import machine as env_machine

    return env_machine()


# The heaviest requests the server accepts (see namelab.serve.schemas): 1,000 names of 64
# letters, and explain over 15 names of 64 letters (each name runs once more per letter).
LONG_NAME = ("Nakamura" * 8)[:64]
HEAVIEST = {
    "plain": {"names": [LONG_NAME] * 1000, "top_k": 3},
    "explain": {"names": [LONG_NAME] * 15, "top_k": 3, "explain": True},
}


async def healthz_under_heavy(base_url: str, repeats: int, interval_s: float = 0.02) -> dict:
    """Send each heaviest request ``repeats`` times, one after another, while polling /healthz.

    Returns the heavy requests' latencies and the /healthz latencies measured while a heavy
    request was in flight: how well model work is kept off the server's event loop.
    """
    health: list[float] = []
    heavy: dict[str, list[float]] = {kind: [] for kind in HEAVIEST}
    errors: list[str] = []
    busy = True
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as http:

        async def send_heavy() -> None:
            nonlocal busy
            try:
                for kind, body in HEAVIEST.items():
                    for _ in range(repeats):
                        start = time.perf_counter()
                        response = await http.post(PATH, json=body)
                        heavy[kind].append((time.perf_counter() - start) * 1000)
                        error = check_answer(response.status_code, response.content, len(body["names"]))
                        if error:
                            errors.append(f"{kind}: {error}")
            finally:
                busy = False

        async def poll() -> None:
            while busy:
                start = time.perf_counter()
                response = await http.get("/healthz")
                if busy:
                    health.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    errors.append(f"/healthz: HTTP {response.status_code}")
                await asyncio.sleep(interval_s)

        await asyncio.gather(send_heavy(), poll())
    return {
        "repeats": repeats,
        **{f"{kind}_ms_median": round(statistics.median(v), 1) for kind, v in heavy.items() if v},
        "healthz_checks": len(health),
        "healthz_p50_ms": round(percentile(health, 50), 2),
        "healthz_p99_ms": round(percentile(health, 99), 2),
        "healthz_max_ms": round(max(health), 2) if health else float("nan"),
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def train_quick_lstm(out_dir: Path, data_dir: str | None) -> Path:
    """The default model: an LSTM, hidden 256, 2 epochs (minutes on two cores)."""
    from namelab import Corpus, TrainConfig, resolve_data_dir, train  # torch: only when a model must be trained

    folder = resolve_data_dir(data_dir)
    run_dir = out_dir / "lstm"
    print(f"no --run given: training an LSTM (hidden 256, 2 epochs) on {folder} into {run_dir}", flush=True)
    train(TrainConfig(cell="lstm", hidden_size=256, epochs=2), Corpus.from_folder(folder), run_dir, data_dir=folder)
    return run_dir


def start_server(run_dirs: list[str], workers: int = 1, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """``namelab serve RUN_DIR... --port 0 --workers N`` in a subprocess; its base URL once N workers answer /healthz."""
    command = [sys.executable, "-m", "namelab", "serve", *run_dirs, "--host", "127.0.0.1", "--port", "0"]
    command += ["--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    base_url = None
    for line in process.stdout:  # the address line comes once the models are loaded and the socket bound
        lines.append(line)
        found = re.search(r" on (http://\S+?)/", line)
        if found:
            base_url = found.group(1)
            break
    if base_url is None:
        process.wait()
        raise RuntimeError(f"the server exited before listening:\n{''.join(lines)}")
    # Keep reading what the server prints, so a full pipe can never block it.
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    deadline = time.monotonic() + timeout
    answered: set[str] = set()  # the worker processes seen (X-Namelab-Worker): all of them must be up
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/healthz", timeout=2.0)
            if response.status_code == 200:
                answered.add(response.headers.get("X-Namelab-Worker", ""))
                if len(answered) >= workers:
                    return process, base_url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server at {base_url} did not answer /healthz within {timeout:.0f}s:\n{''.join(lines)}")


def server_stack() -> dict:
    """What uvicorn picks in this environment ("auto"): the C parser and loop when installed."""
    has = lambda module: importlib.util.find_spec(module) is not None  # noqa: E731
    return {"http": "httptools" if has("httptools") else "h11", "loop": "uvloop" if has("uvloop") else "asyncio"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", help="run or compare folder to serve (repeatable; default: train)")
    parser.add_argument("--data-dir", help="names folder for the quick training (default: $NAMELAB_DATA or the cache)")
    parser.add_argument("--requests", type=int, default=5000, help="requests per round (default 5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--names", type=int, default=10, help="names per request (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    parser.add_argument("--warmup", type=int, default=300, help="requests sent before measuring (default 300)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator (default raw)")
    parser.add_argument(
        "--heavy", type=int, default=3, help="times each heaviest request is sent while /healthz is polled (default 3)"
    )
    parser.add_argument(
        "--workers",
        default=None,
        help="comma-separated worker counts to compare, one server each (default: 1 and the free cores)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    args = parser.parse_args(argv)
    for flag in ("requests", "concurrency", "names", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
    if args.heavy < 0:
        parser.error("--heavy must be at least 0")
    if args.workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        args.workers = sorted({1, cores})
    else:
        try:
            args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
        except ValueError:
            parser.error(f"--workers takes comma-separated counts such as 1,2; got {args.workers!r}")
        if not args.workers or min(args.workers) < 1:
            parser.error("--workers: every count must be at least 1")

    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="namelab-load-") as tmp:
        run_dirs = args.run or [str(train_quick_lstm(Path(tmp), args.data_dir))]
        print(f"load average {load_at_start[0]:.2f} on {os.cpu_count()} CPUs; workers {args.workers}", flush=True)
        configurations = measure_all(run_dirs, args)
    load_at_end = os.getloadavg()

    print(f"side by side (median of {args.rounds} rounds; load average {load_at_start[0]:.2f} -> {load_at_end[0]:.2f}):")
    print(f"  {'workers':>7} {'req/s':>8} {'x first':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'srv CPU ms/req':>14} {'healthz p99 ms (heavy)':>22}")
    first = configurations[0]["median"]["requests_per_s"]
    for c in configurations:
        m, heavy = c["median"], c["healthz_under_heavy"]
        health = f"{heavy['healthz_p99_ms']:.1f}" if heavy else "n/a"
        print(
            f"  {c['workers']:>7} {m['requests_per_s']:>8.0f} {m['requests_per_s'] / first:>8.2f} {m['p50_ms']:>7.1f} "
            f"{m['p99_ms']:>7.1f} {c['errors']:>6} {m.get('server_cpu_ms_per_request', float('nan')):>14.3f} {health:>22}"
        )
    errors = sum(c["errors"] for c in configurations)
    report = {
        "command": " ".join(["python", "bench/load.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "names_per_request": args.names,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "workers": args.workers,
            "runs": args.run or ["quick LSTM: hidden 256, 2 epochs"],
            "client": args.client,
            "server": server_stack(),
        },
        "machine": {
            **machine(),
            "load_average_at_start": [round(x, 2) for x in load_at_start],
            "load_average_at_end": [round(x, 2) for x in load_at_end],
        },
        "configurations": configurations,
        "errors": errors,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 1 if errors else 0


def one_round(server: subprocess.Popen, base_url: str, seed: int, args: argparse.Namespace) -> dict:
    """``--requests`` requests against one server: rates, latencies, errors and CPU per request."""
    bodies = make_bodies(args.requests, args.names, seed=seed)
    server_cpu, client_cpu = tree_cpu_seconds(server.pid), cpu_seconds()
    result = asyncio.run(send_all(base_url, bodies, args.concurrency, args.names, args.client))
    if server_cpu is not None:
        server_ms = (tree_cpu_seconds(server.pid) - server_cpu) * 1000 / args.requests
        result["server_cpu_ms_per_request"] = round(server_ms, 3)
    result["client_cpu_ms_per_request"] = round((cpu_seconds() - client_cpu) * 1000 / args.requests, 3)
    return result


def measure_all(run_dirs: list[str], args: argparse.Namespace) -> list[dict]:
    """Every ``--workers`` count's server, started together; rounds alternate between them.

    An idle server costs nothing, and alternating rounds (1, N, 1, N, ...) makes a neighbour
    that loads the machine for a while weigh on every configuration alike, so the ratios
    hold better than the rates.
    """
    servers = []
    try:
        for workers in args.workers:
            server, base_url = start_server(run_dirs, workers)
            servers.append((workers, server, base_url))
            print(f"{workers} worker(s): server at {base_url}", flush=True)
            if args.warmup:
                warmup = make_bodies(args.warmup, args.names, seed=-1)
                asyncio.run(send_all(base_url, warmup, args.concurrency, args.names, args.client))
        rounds: dict[int, list[dict]] = {workers: [] for workers in args.workers}
        for i in range(args.rounds):
            for workers, server, base_url in servers:
                result = one_round(server, base_url, i, args)
                rounds[workers].append(result)
                print(
                    f"  round {i + 1}, {workers} worker(s): {result['requests_per_s']:.0f} req/s "
                    f"({result['names_per_s']:.0f} names/s)  p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                    f"errors {result['errors']}  CPU ms/request: server {result.get('server_cpu_ms_per_request', 'n/a')}, "
                    f"client {result['client_cpu_ms_per_request']}",
                    flush=True,
                )
                for error in result["first_errors"]:
                    print(f"  error: {error}", file=sys.stderr)
        heavy = {}
        for workers, _, base_url in servers:
            heavy[workers] = asyncio.run(healthz_under_heavy(base_url, args.heavy)) if args.heavy else None
            if heavy[workers]:
                h = heavy[workers]
                print(
                    f"  {workers} worker(s), heaviest requests (median): plain {h.get('plain_ms_median', 'n/a')} ms, "
                    f"explain {h.get('explain_ms_median', 'n/a')} ms; /healthz meanwhile: "
                    f"p50 {h['healthz_p50_ms']:.1f} ms  p99 {h['healthz_p99_ms']:.1f} ms  "
                    f"max {h['healthz_max_ms']:.1f} ms over {h['healthz_checks']} checks  errors {h['errors']}",
                    flush=True,
                )
                for error in h["first_errors"]:
                    print(f"  error: {error}", file=sys.stderr)
    finally:
        for _, server, _ in servers:
            server.terminate()
        for _, server, _ in servers:
            server.wait(timeout=30)
    return [summary(workers, rounds[workers], heavy[workers]) for workers in args.workers]


def summary(workers: int, rounds: list[dict], heavy: dict | None) -> dict:
    """One worker count's rounds, their medians and its /healthz figures under the heaviest requests."""
    keys = ("requests_per_s", "names_per_s", "p50_ms", "p99_ms")
    keys += ("server_cpu_ms_per_request", "client_cpu_ms_per_request")
    median = {key: statistics.median(r[key] for r in rounds) for key in keys if all(key in r for r in rounds)}
    errors = sum(r["errors"] for r in rounds) + (heavy["errors"] if heavy else 0)
    return {
        "workers": workers,
        "rounds": [{k: v for k, v in r.items() if k != "first_errors"} for r in rounds],
        "median": median,
        "healthz_under_heavy": {k: v for k, v in heavy.items() if k != "first_errors"} if heavy else None,
        "errors": errors,
    }


if __name__ == "__main__":
    sys.exit(main())
