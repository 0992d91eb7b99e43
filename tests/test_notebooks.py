"""The notebooks in ``notebooks/`` run top to bottom on the built-in example data, in this Python's own kernel.

Each notebook is executed with nbclient in a temporary working folder (nothing is written into the
repository), with ``PTYDASK_SHARED`` pointing at the shared data so the real-data cells run when the
data are there. Jupyter's runtime files and IPython's profile go to the temporary folder too: nothing
is registered outside the virtual environment.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

from conftest import REPO, SHARED  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: Seconds a notebook may take here (each runs in well under 60 s on an idle machine; CI machines are shared).
BUDGET = 180
CELL_TIMEOUT = 300
WARNING = re.compile(r"\b\w*Warning\b: ")
#: Warnings that depend on other processes on the machine, not on the notebooks: a Dask scheduler's HTTP
#: server falls back to a free port when 8787 is taken (ptydask.connect's LocalCluster asks for 8787).
ENVIRONMENTAL = re.compile(r"UserWarning: Port \d+ is already in use")

pytestmark = pytest.mark.slow


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder for the kernel, with Jupyter/IPython state kept inside it.

    A ``python3`` kernel spec naming this very interpreter comes first on ``JUPYTER_PATH``, so no
    user-wide kernel spec can send the notebooks to another Python.
    """
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (this environment)", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("PTYDASK_SHARED", str(SHARED.resolve()))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the notebooks' output folders (tempfile.mkdtemp)
    work = tmp_path / "work"
    work.mkdir()
    return work


def run(nb, cwd: Path) -> float:
    """Execute ``nb`` in place with the ``python3`` kernel in ``cwd``; return the seconds taken."""
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0


def outputs(nb, kind: str) -> list[str]:
    """Text of every stream output named ``kind`` ('stdout'/'stderr')."""
    return [o["text"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == kind]


def test_there_are_four_notebooks_stored_without_outputs() -> None:
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), f"{path.name}: strip outputs"
        assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code) / 2, f"{path.name}: explain the code"


def test_kernel_is_this_environment(kernel_env: Path) -> None:
    cell = nbformat.v4.new_code_cell("import sys, os; print(sys.prefix); print(os.getcwd())")
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    run(nb, kernel_env)
    prefix, cwd = outputs(nb, "stdout")[0].split()
    assert Path(prefix) == Path(sys.prefix) and Path(cwd) == kernel_env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, kernel_env: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    seconds = run(nb, kernel_env)  # a failing cell raises CellExecutionError with its traceback
    warnings = [line for text in outputs(nb, "stderr") for line in text.splitlines()
                if WARNING.search(line) and not ENVIRONMENTAL.search(line)]
    assert not warnings, f"{path.name} shows warnings: {warnings}"
    assert seconds < BUDGET, f"{path.name} took {seconds:.0f} s"
    assert not any(kernel_env.iterdir()), "notebooks must write into their own temporary folder"
    # the last cell removes the notebook's folder (under TMPDIR) and says what it held: nothing is left
    removed = re.search(r"removed (\S+): (\d+) files", outputs(nb, "stdout")[-1])
    assert removed and Path(removed.group(1)).parent == kernel_env.parent / "tmp", outputs(nb, "stdout")[-1]
    assert int(removed.group(2)) > 0, "the notebook wrote nothing to its folder"
    assert not any((kernel_env.parent / "tmp").iterdir()), list((kernel_env.parent / "tmp").iterdir())
    assert not list((REPO / "notebooks").glob("*.ptyd")) and not list((REPO / "notebooks").glob("*.h5"))


def tiny_scan():
    """Six 4 x 4 frames in three blocks."""
    import numpy as np
    from ptydask import from_arrays

    return from_arrays(np.ones((6, 4, 4)), np.zeros((6, 2)), energy=8.0, distance=1.0, psize=1e-4, chunks=2)


def test_progress_bar_in_a_kernel_but_not_in_logs(kernel_env: Path, tmp_path: Path, capfd) -> None:
    """``to_ptyd(progress=None)``: one bar counting frames in Jupyter (a widget, text without ipywidgets,
    never a warning), none in a log."""
    import inspect

    from ptydask import to_ptyd

    out = tmp_path / "kernel.ptyd"
    source = f"{inspect.getsource(tiny_scan)}\nimport ptydask\nptydask.to_ptyd(tiny_scan(), {str(out)!r})"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    run(nb, kernel_env)
    err = "".join(outputs(nb, "stderr"))
    assert "Warning" not in err
    if importlib.util.find_spec("ipywidgets") is None:  # a text bar
        assert "writing kernel.ptyd" in err and "6/6" in err
    else:  # a widget: its final state is stored in the notebook's metadata
        state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
        models = [m["state"] for m in state.values()]
        bars = [m for m in models if m.get("_model_name") in ("FloatProgressModel", "IntProgressModel")]
        assert len(bars) == 1 and bars[0]["value"] == bars[0]["max"] == 6  # one bar, counting the 6 frames
        texts = " ".join(str(m.get("value", "")) for m in models if m.get("_model_name") == "HTMLModel")
        texts = texts.replace("\u2007", " ")  # tqdm.notebook writes figure spaces
        assert "writing kernel.ptyd" in texts and "6/6" in texts, texts

    capfd.readouterr()
    to_ptyd(tiny_scan(), tmp_path / "log.ptyd")  # here stderr is captured by pytest: no terminal, no bar
    assert (tmp_path / "log.ptyd").is_file() and "writing" not in capfd.readouterr().err
