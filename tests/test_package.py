"""The package itself: what `import namelab` costs and gives, and the command's first second.

    .venv/bin/python -m pytest tests/test_package.py -q
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_import_namelab_loads_no_torch_and_every_public_name_resolves_to_its_home() -> None:
    result = run_python(
        """
        import sys, namelab
        print("torch" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]  # the public names are imported on first use
    import namelab

    for name, home in namelab._PUBLIC.items():
        assert getattr(namelab, name) is getattr(importlib.import_module(f"namelab.{home}"), name), name
    assert set(namelab.__all__) <= set(dir(namelab))
    with pytest.raises(AttributeError, match="no attribute 'tarin'"):
        namelab.tarin


def test_subpackages_are_attributes_of_a_plain_import() -> None:
    result = run_python(
        """
        import namelab
        print(namelab.runs.checkpoint.CONFIG, ",".join(namelab.core.cells.CELLS), callable(namelab.train))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["config.json", "rnn,lstm,gru", "True"]


def test_namelab_train_stays_the_function_whatever_was_imported_first() -> None:
    result = run_python(
        """
        import namelab.train.loop
        import namelab
        from namelab.train.presets import PRESETS
        from namelab import train
        print(callable(namelab.train), train is namelab.train, train is sys.modules["namelab.train.loop"].train)
        """.replace("import namelab\n", "import namelab, sys\n", 1)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


# Ctrl-C as the command imports torch: a finder that raises KeyboardInterrupt there stands for
# the key pressed in that instant, every time (a real signal would land anywhere).
CTRL_C_IN_IMPORTS = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
{start}
"""


@pytest.mark.parametrize(
    "start",
    [
        "from namelab.cli import main; sys.exit(main(['predict', 'Nakamura']))",  # the console script
        "import runpy; runpy.run_module('namelab', run_name='__main__')",  # python -m namelab
    ],
    ids=["console-script", "python-m"],
)
def test_ctrl_c_during_the_commands_imports_prints_one_line_and_exits_130(start: str) -> None:
    result = run_python(CTRL_C_IN_IMPORTS.format(start=start), "predict", "Nakamura")
    assert result.returncode == 130, result.stderr
    assert result.stderr == "interrupted\n"
    assert result.stdout == ""


def test_the_command_can_be_run_twice_in_one_process(capsys) -> None:
    from namelab import cli

    assert cli.main([]) == 0 and cli.main([]) == 0  # its first run imports the commands, and must not rebind main
    assert "predict" in capsys.readouterr().out
