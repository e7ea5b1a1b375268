"""CI must not pass without the real dataset: .ci/run and the real-data tests' check.

    .venv/bin/python -m pytest tests/test_ci.py -q

.ci/run runs here with stand-ins for ``make``, ``apt-get`` and the browser on PATH, so
it never starts the suite from inside the suite; the stand-in ``make`` records its call.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_names_folder, require_real_names, requires_real_data

REPO = Path(__file__).resolve().parents[1]


def run_ci(tmp_path: Path, names: Path, ci: str | None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run .ci/run with NAMELAB_DATA=``names``; its result and the commands the stand-ins received."""
    stubs, calls = tmp_path / "bin", tmp_path / "calls"
    stubs.mkdir()
    for command in ("make", "apt-get", "chromium", "chromedriver"):
        (stubs / command).write_text(f'#!/bin/sh\necho "{command} $*" >> "{calls}"\n')
        (stubs / command).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PATH=f"{stubs}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}", NAMELAB_DATA=str(names))
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run([str(REPO / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_ci_run_fails_when_the_names_folder_is_missing(tmp_path: Path, ci: str) -> None:
    result, calls = run_ci(tmp_path, tmp_path / "no-such-folder", ci)
    assert result.returncode == 1
    assert "no-such-folder is not a folder" in result.stderr
    assert "set NAMELAB_DATA to the official names folder" in result.stderr
    assert calls == []  # stopped before installing anything or running a test


def test_ci_run_runs_the_tests_when_the_names_folder_exists(tmp_path: Path) -> None:
    names = make_names_folder(tmp_path / "names", {"Alpha": ["Abe"]})
    result, calls = run_ci(tmp_path, names, "true")
    assert result.returncode == 0, result.stderr
    assert f"NAMELAB_DATA={names}" in result.stdout
    assert calls == ["make test"]


def test_ci_run_outside_ci_goes_on_and_says_the_real_data_tests_will_skip(tmp_path: Path) -> None:
    result, calls = run_ci(tmp_path, tmp_path / "no-such-folder", None)
    assert result.returncode == 0, result.stderr
    assert "the real-data tests will skip" in result.stdout
    assert calls == ["make test"]


def official_looking(folder: Path, files: int) -> Path:
    return make_names_folder(folder, {f"Language{i:02d}": ["Name"] for i in range(files)})


def check(folder: Path) -> tuple[str, str]:
    """What :func:`require_real_names` does with ``folder``: ("fail" | "skip" | "run", message).

    Caught here, since a skip raised inside the test would skip this test instead of failing it.
    """
    try:
        require_real_names(folder)
    except pytest.fail.Exception as err:
        return "fail", str(err)
    except pytest.skip.Exception as err:
        return "skip", str(err)
    return "run", ""


def test_real_data_check_fails_in_ci_and_skips_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMELAB_DATA", str(tmp_path / "names"))
    incomplete = official_looking(tmp_path / "names", 17)
    monkeypatch.setenv("CI", "true")
    outcome, message = check(incomplete)
    assert outcome == "fail" and "CI=true and the real-data tests cannot run" in message
    assert "holds 17 .txt files" in message and "set NAMELAB_DATA to the official names folder" in message
    assert check(tmp_path / "missing")[0] == "fail"
    monkeypatch.delenv("CI")
    outcome, message = check(incomplete)
    assert outcome == "skip" and "holds 17 .txt files" in message
    monkeypatch.delenv("NAMELAB_DATA")
    assert check(tmp_path / "missing") == ("skip", "NAMELAB_DATA is unset; set NAMELAB_DATA to the official names "
                                           "folder (18 files) to run the real-data tests")
    complete = official_looking(tmp_path / "complete", 18)
    monkeypatch.setenv("CI", "true")
    assert check(complete) == ("run", "")


def test_real_data_tests_go_through_the_check() -> None:
    # A skipif evaluated at import would skip them in CI too: they must ask for the fixture.
    assert requires_real_data.name == "usefixtures" and requires_real_data.args == ("real_names",)


@pytest.mark.slow  # a second interpreter that imports torch: seconds, not milliseconds
def test_real_data_tests_fail_in_ci_without_the_data(tmp_path: Path) -> None:
    # The whole path, marker and fixture: pytest itself, on the real-data tests of test_data.py.
    env = {**os.environ, "CI": "true", "NAMELAB_DATA": str(tmp_path / "missing")}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/test_data.py", "-k", "real_data"]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert " error" in summary and " passed" not in summary and " skipped" not in summary, summary
    assert "CI=true and the real-data tests cannot run" in result.stdout
