"""The notebook runs top to bottom in quick mode, and prints the same numbers every time."""

import copy
import re

import nbformat
import pytest

from conftest import REPO, needs_shared

NOTEBOOK = REPO / "notebooks" / "quickdraw_stroke_diffusion.ipynb"
MODELS = [REPO / "models" / c / "model_index.json" for c in ("cat", "bus", "rabbit")]


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


def printed_numbers(nb) -> list[str]:
    text = []
    for cell in nb.cells:
        if "metrics" in cell.metadata.get("tags", []):
            # stdout only: stderr carries log timestamps and progress-bar rates, which differ run to run
            text += [o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.get("name") == "stdout"]
    return re.findall(r"-?\d+\.\d+|\d+", "".join(text))


@needs_shared
@pytest.mark.skipif(not all(p.is_file() for p in MODELS), reason="the notebook uses the shipped models in models/")
def test_notebook_runs_in_quick_mode_with_identical_numbers_twice():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first, second = execute_quick(nb), execute_quick(nb)
    errors = [o for c in first.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    numbers = printed_numbers(first)
    assert len(numbers) > 50  # losses, stroke counts, FID and KID were printed
    assert any("METRIC model" in o.get("text", "") for c in first.cells for o in c.get("outputs", []))
    assert numbers == printed_numbers(second)


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
        stream("stream", name="stderr", text="WARNING pipeline.data: cat.ndjson.gz is not the official cat file\n"),
        stream("stream", name="stdout", text="step 16/40 [done]\n"),  # stdout is never touched
    ])
    run_notebook.drop_progress_bars(cell)
    assert [o.text for o in cell.outputs] == ["FID 12.96  KID 0.0067\n",
                                              "WARNING pipeline.data: cat.ndjson.gz is not the official cat file\n",
                                              "step 16/40 [done]\n"]
