"""bench/predict_parts.py runs end to end on a tiny run and prints each part beside what it replaced."""

from pathlib import Path

from helpers import load_bench


def test_predict_parts_prints_before_and_after(tiny_runs: dict[str, Path], tiny_names_dir: Path, capsys):
    bench = load_bench("predict_parts")
    argv = ["--run", str(tiny_runs["lstm"]), "--data-dir", str(tiny_names_dir), "--names", "40", "--repeats", "1"]
    assert bench.main(argv + ["--backends", "torch,onnx"]) == 0
    out = capsys.readouterr().out
    unknown = next(line for line in out.splitlines() if line.strip().startswith("unknown score  "))
    assert "->" in unknown and float(unknown.split("max |diff|")[1]) <= 1e-6  # the rewrite changed no score
    for part in ("prepare (normalize)", "describe (rows)", "predict() whole", "load average"):
        assert part in out
    assert "  torch  model" in out and "  onnx   model" in out and "(x1.00)" in out
