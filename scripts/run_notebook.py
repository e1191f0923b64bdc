"""Execute the project notebook top to bottom and save it with its outputs (atomically).

    python scripts/run_notebook.py --mode full     # rewrites the committed copy: 2,000-sketch evaluations
    python scripts/run_notebook.py --mode quick    # a few minutes on 2 CPU cores (what the tests run), saved as
                                                   # notebooks/quickdraw_stroke_diffusion.quick.ipynb

The mode goes into a cell tagged ``injected-parameters`` after the ``parameters`` cell, as papermill does.
Progress bars (tqdm lines on stderr) are left out of the saved outputs; everything else printed is kept.
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from sketch_diffusion.fileio import write_text_atomic  # noqa: E402

NOTEBOOK = REPO / "notebooks" / "quickdraw_stroke_diffusion.ipynb"
# a tqdm status line: "desc:  40%|####      | 16/40 [01:49<02:35,  6.48s/it]" (counts, then the time in brackets)
PROGRESS_LINE = re.compile(r"\d+/\d+ \[[\d:?]+(<[\d:?]+)?")


def drop_progress_bars(cell) -> None:
    """Remove the stderr outputs of ``cell`` that hold nothing but progress-bar redraws and blank lines."""
    def is_progress(output) -> bool:
        if output.output_type != "stream" or output.name != "stderr":
            return False
        lines = [line for line in re.split(r"[\r\n]", output.text) if line.strip()]
        return all(PROGRESS_LINE.search(line) for line in lines)

    cell.outputs = [o for o in cell.outputs if not is_progress(o)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("quick", "full"), default="full")
    parser.add_argument("--notebook", default=str(NOTEBOOK), help="the notebook to execute (default: %(default)s)")
    parser.add_argument("--out", help="where the executed notebook goes; default: --notebook itself in full mode, "
                                      "<notebook>.quick.ipynb beside it in quick mode")
    args = parser.parse_args()
    path = Path(args.notebook)
    out = Path(args.out) if args.out else path if args.mode == "full" else path.with_suffix(".quick.ipynb")
    if not path.is_file():
        parser.error(f"--notebook {path} is not there")
    if out.is_dir():
        parser.error(f"--out {out} is a folder; give the .ipynb file to write")
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    position = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(position + 1, nbformat.v4.new_code_cell(f'MODE = "{args.mode}"',
                                                            metadata={"tags": ["injected-parameters"]}))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    NotebookClient(nb, timeout=3600, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            drop_progress_bars(cell)
    write_text_atomic(out, nbformat.writes(nb) + "\n")  # the trailing newline nbformat.write adds
    print(f"executed {path} in {args.mode} mode: {out}")


if __name__ == "__main__":
    main()
