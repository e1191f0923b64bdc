"""The notebook runs top to bottom in quick mode and prints what its committed copy printed, where the mode does not
matter.

Running it is the suite's longest test (training, sampling and Inception features on the CPU), so it runs once: the
committed copy (run in full mode) is the reference for every cell that does not read the mode.
"""

import copy
import re

import nbformat
import pytest

from conftest import REPO, needs_shared

NOTEBOOK = REPO / "notebooks" / "quickdraw_stroke_diffusion.ipynb"
MODELS = [REPO / "models" / c / "model_index.json" for c in ("cat", "bus", "rabbit")]
MODE_NAMES = re.compile(r"\b(QUICK|MODE|N_EVAL)\b")  # what the mode sets; cells that read it print other numbers


def execute_quick(nb):
    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    for cell in nb.cells:  # start from a clean slate, in quick mode whatever the committed copy was run with
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = 'MODE = "quick"'
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    return nb


def stdout_numbers(cell) -> list[str]:
    """The numbers a cell printed on stdout (stderr carries log timestamps and progress-bar rates)."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.output_type == "stream" and o.get("name") == "stdout")
    return re.findall(r"-?\d+\.\d+|\d+", text)


def printed_numbers(nb) -> list[str]:
    return [n for cell in nb.cells if "metrics" in cell.metadata.get("tags", []) for n in stdout_numbers(cell)]


@needs_shared
@pytest.mark.skipif(not all(p.is_file() for p in MODELS), reason="the notebook uses the shipped models in models/")
def test_notebook_runs_in_quick_mode_and_prints_the_committed_numbers():
    committed = nbformat.read(NOTEBOOK, as_version=4)
    ran = execute_quick(committed)
    errors = [o for c in ran.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert len(printed_numbers(ran)) > 50  # losses, stroke counts, FID and KID were printed
    assert any("METRIC model" in o.get("text", "") for c in ran.cells for o in c.get("outputs", []))

    # the cells that do not read the mode (the shipped models' drawings, their logs, the model's size and the
    # representation's shapes) print the numbers the committed copy shows: everything in them is seeded
    saved = {c.source: c for c in committed.cells if c.cell_type == "code"}
    compared = []
    for cell in ran.cells:
        if cell.cell_type == "code" and not MODE_NAMES.search(cell.source) and stdout_numbers(cell):
            assert stdout_numbers(cell) == stdout_numbers(saved[cell.source]), (
                f"the cell starting {cell.source[:80]!r} printed other numbers than the committed notebook: re-run "
                "it with scripts/run_notebook.py")
            compared.append(cell)
    assert any("metrics" in c.metadata.get("tags", []) for c in compared)  # the shipped models' drawings among them


def test_saved_notebook_keeps_prints_and_warnings_but_not_progress_bars():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_notebook", REPO / "scripts" / "run_notebook.py")
    run_notebook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_notebook)
    stream = nbformat.v4.new_output
    cell = nbformat.v4.new_code_cell("...", outputs=[
        stream("stream", name="stdout", text="FID 12.96  KID 0.0067\n"),
        stream("stream", name="stderr", text="inception features:  40%|####      | 16/40 [01:49<02:35,  6.48s/it]"),
        stream("stream", name="stderr", text="\rsteps:   0%|          | 0/300 [00:00<?, ?it/s]\n\n"),
        stream("stream", name="stderr", text="\n"),
        stream("stream", name="stderr", text="WARNING sketch_diffusion.data: cat.ndjson.gz is not the official cat file\n"),
        stream("stream", name="stdout", text="step 16/40 [done]\n"),  # stdout is never touched
    ])
    run_notebook.drop_progress_bars(cell)
    assert [o.text for o in cell.outputs] == ["FID 12.96  KID 0.0067\n",
                                              "WARNING sketch_diffusion.data: cat.ndjson.gz is not the official cat file\n",
                                              "step 16/40 [done]\n"]
