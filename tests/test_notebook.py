"""examples/quickstart.ipynb runs top to bottom in a Jupyter kernel of its own (nbclient), against
local Spark: the notebook path users take, with the report shown inline."""
import os

import pytest

from .conftest import ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_before = dict(os.environ)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["TMPDIR"] = str(tmp_path)  # the default stages folder is the temporary one: a fresh run each time
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    try:
        nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "'selected': 60" in text and "gio-spark: stage density_ratio: running" in text
    counts = {line.split("|")[1].strip(): int(line.split("|")[2]) for line in text.splitlines()
              if line.count("|") == 3 and line.split("|")[1].strip() in ("medicine", "law", "software")}
    assert sum(counts.values()) == 60 and counts.get("medicine", 0) > 50  # the target is medical
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the report, inline
