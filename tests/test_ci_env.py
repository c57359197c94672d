"""The CI's virtualenv script (.ci/cached_venv.sh) on a cold cache: a venv made over the Python
that runs it sees that Python's packages, whether it is a global Python or a virtualenv (a venv
made from inside a venv)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPT = str(ROOT / ".ci" / "cached_venv.sh")


def make(python: str, venv: Path, check: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", SCRIPT, "probe", str(venv), check, "--over-this-python", "--"], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("outer", ["a virtualenv", "the tests' Python"])
def test_a_venv_over_this_python_sees_its_packages(tmp_path, outer):
    env = dict(os.environ)
    if outer == "a virtualenv":  # a package only the outer virtualenv has
        venv = tmp_path / "outer"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                  "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
        Path(purelib, "outer_only.py").write_text("WHERE = 'outer'\n")
        env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv))
        check, module = "import outer_only", "outer_only"
    else:
        Path(tmp_path, "bin").mkdir()
        Path(tmp_path, "bin", "python").symlink_to(sys.executable)  # "python" is the tests' own
        env.update(PATH=f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}")
        check, module = "import pytest", "pytest"
    inner = tmp_path / "inner"
    made = make("python", inner, check, env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().splitlines() == [str(inner / "bin" / "python")] and "creating" in made.stderr
    seen = subprocess.run([str(inner / "bin" / "python"), "-c", f"import {module}, sys; print(sys.prefix)"],
                          capture_output=True, text=True, timeout=60)
    assert seen.returncode == 0 and seen.stdout.strip() == str(inner), seen.stderr
    again = make("python", inner, check, env)
    assert again.returncode == 0 and "reusing" in again.stderr
    if outer == "a virtualenv":  # made over another Python: not reused
        other = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        Path(tmp_path, "bin").mkdir()
        Path(tmp_path, "bin", "python").symlink_to(sys.executable)
        remade = make("python", inner, "import pytest", other)
        assert remade.returncode == 0 and "creating" in remade.stderr
    bad = make("python", tmp_path / "other", "import no_such_module_anywhere", env)
    assert bad.returncode == 1 and "fails its check" in bad.stderr
