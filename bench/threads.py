"""Training speed against torch's thread defaults, on an idle machine and beside one busy process.

    NAMELAB_DATA=/work/shared/data/names python bench/threads.py            # LSTM epochs, ~3-5 min
    python bench/threads.py --quick                                         # a smoke test: a few batches

torch's OpenMP threads spin while they wait for each other at every step; beside a
process that keeps one core busy, a two-thread epoch then runs several times slower than
a one-thread one. namelab's default (``namelab.runs.env.AdaptiveThreads``) runs on the CPUs
other processes leave free. This measures, in the same run, one training epoch of the
LSTM (hidden 256, batch 128, as ``namelab train``; ``--batches`` limits it) under:

* ``torch-default``: what namelab did before: torch's own count (one per core);
* ``one-thread``: ``--threads 1``;
* ``passive``: torch's count with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep);
* ``adaptive``: namelab's default now, as the CLI sets it up;

each idle and beside one neighbour (a bounded Python busy loop this script starts and
stops), every measurement in a fresh process (OpenMP reads its settings once, at load).
It prints the median seconds of ``--repeats`` runs and the ratios the defaults are
judged by, and writes them to ``bench/threads_results.json``. Targets: beside a busy
neighbour, the default's epoch within 1.3x the idle one-thread epoch; idle, within 10 %
of the best idle figure. Nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
CONFIGS = {
    "torch-default": {"threads": None, "env": {}},
    "one-thread": {"threads": 1, "env": {}},
    "passive": {"threads": None, "env": {"OMP_WAIT_POLICY": "PASSIVE"}},
    "adaptive": {"threads": "adaptive", "env": {}},
}
OLD, NEW = "torch-default", "adaptive"
NEIGHBOUR = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def child(args: argparse.Namespace) -> None:
    """One measurement, in this process: warm up, then time one (partial) epoch; prints JSON."""
    sys.path.insert(0, str(SRC))
    # Here, in the child, under the measured configuration's environment (OMP_WAIT_POLICY is read when torch loads).
    import torch

    from namelab.data.corpus import Corpus
    from namelab.runs.config import TrainConfig, build_model
    from namelab.runs.env import AdaptiveThreads
    from namelab.train.loop import class_weights, train_epoch

    if args.threads == "adaptive":
        AdaptiveThreads().start()
    elif args.threads:
        torch.set_num_threads(int(args.threads))
    corpus = Corpus.from_folder(args.data_dir)
    split = corpus.split(seed=0)
    config = TrainConfig(cell="lstm", hidden_size=args.hidden_size, batch_size=128, device="cpu", epochs=1)
    examples = split.train[: args.batches * config.batch_size] if args.batches else split.train
    torch.manual_seed(0)
    model = build_model(config, len(corpus.vocab), corpus.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    steps = 2 * max(1, -(-len(examples) // config.batch_size)) + 2
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps)
    weights = class_weights(split.train, corpus.num_classes, config.class_weight_power)
    warm = examples[: 2 * config.batch_size]
    train_epoch(model, optimizer, scheduler, warm, corpus.vocab, config, weights, epoch=0)
    start = time.perf_counter()
    train_epoch(model, optimizer, scheduler, examples, corpus.vocab, config, weights, epoch=1)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(), "names": len(examples)}))


def measure(config: str, args: argparse.Namespace) -> dict:
    settings = CONFIGS[config]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env.update(settings["env"], PYTHONPATH=str(SRC))
    argv = [sys.executable, __file__, "--child", "--data-dir", str(args.data_dir),
            "--batches", str(args.batches), "--hidden-size", str(args.hidden_size)]  # fmt: skip
    if settings["threads"] is not None:
        argv += ["--threads", str(settings["threads"])]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{config} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def with_neighbour(run, seconds: float):
    """Run ``run()`` beside one process that keeps a core busy for at most ``seconds``."""
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(seconds)])
    try:
        time.sleep(0.3)  # let it reach its loop
        return run()
    finally:
        neighbour.terminate()
        neighbour.wait()


def tiny_names(folder: Path) -> Path:
    """A made-up three-language folder, for --quick where no dataset is at hand."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for language, letters in {"Alpha": "aeiou", "Beta": "bdgkt", "Gamma": "lmnrs"}.items():
        names = {"".join(rng.choice(letters) for _ in range(rng.randint(3, 9))).capitalize() for _ in range(400)}
        (folder / f"{language}.txt").write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="names folder (default: $NAMELAB_DATA)")
    parser.add_argument("--batches", type=int, default=0, help="batches per timed epoch (default 0: a whole epoch)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, of: " + ", ".join(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="8 batches, 1 repeat, made-up names if no dataset")
    parser.add_argument("--out", type=Path, default=HERE / "threads_results.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or not configs:
        parser.error(f"unknown --configs {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    scratch = tempfile.TemporaryDirectory()
    if args.quick:
        args.batches = args.batches or 8
        args.repeats = 1
    if args.data_dir is None:
        data = os.environ.get("NAMELAB_DATA")
        args.data_dir = Path(data) if data else tiny_names(Path(scratch.name) / "names") if args.quick else None
    if args.data_dir is None:
        parser.error("give --data-dir or set NAMELAB_DATA (or --quick, which makes up names)")
    sys.path.insert(0, str(SRC))
    from namelab.runs.env import machine  # from the path just set

    started = machine()
    figures: dict[str, dict[str, dict]] = {}
    for config in configs:
        figures[config] = {}
        for condition in ("idle", "neighbour"):
            runs = []
            for _ in range(args.repeats):
                if condition == "idle":
                    runs.append(measure(config, args))
                else:
                    runs.append(with_neighbour(lambda: measure(config, args), seconds=600))
            seconds = statistics.median(r["seconds"] for r in runs)
            figures[config][condition] = {
                "seconds": seconds,
                "runs": [r["seconds"] for r in runs],
                "threads": [r["threads"] for r in runs],
                "names": runs[0]["names"],
            }
            print(f"{config:>14} {condition:>9}: {seconds:7.3f} s  (threads {runs[0]['threads']})", flush=True)
    ratios = ratios_of(figures)
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    report = {
        "command": " ".join(["python", "bench/threads.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {"batches": args.batches, "hidden_size": args.hidden_size, "repeats": args.repeats,
                     "data_dir": str(args.data_dir), "configs": configs},  # fmt: skip
        "machine": {**started, "load_average_end": list(os.getloadavg())},
        "seconds": figures,
        "ratios": ratios,
        "targets": {"new_with_neighbour_over_idle_one_thread": 1.3, "new_idle_over_best_idle": 1.1},
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    scratch.cleanup()
    return 0


def ratios_of(figures: dict[str, dict[str, dict]]) -> dict[str, float]:
    """The ratios the defaults are judged by, from the configurations measured."""
    ratios = {}
    idle_one = figures.get("one-thread", {}).get("idle", {}).get("seconds")
    best_idle = min(f["idle"]["seconds"] for f in figures.values())
    for config in (OLD, NEW, "passive"):
        if config not in figures:
            continue
        if idle_one:
            ratios[f"{config}_with_neighbour_over_idle_one_thread"] = figures[config]["neighbour"]["seconds"] / idle_one
        ratios[f"{config}_idle_over_best_idle"] = figures[config]["idle"]["seconds"] / best_idle
        ratios[f"{config}_neighbour_over_idle"] = figures[config]["neighbour"]["seconds"] / figures[config]["idle"]["seconds"]
    return ratios


if __name__ == "__main__":
    sys.exit(main())
