"""Run the notebooks of ``docs/`` top to bottom in a fresh kernel and save them with their outputs.

    .venv/bin/python docs/run_notebooks.py                 # every docs/*.ipynb, written in place
    .venv/bin/python docs/run_notebooks.py docs/attention-walkthrough.ipynb

``make notebooks`` runs it after a change to a notebook or to what it shows, so the outputs the
repository carries are the ones the library computes now; ``tests/test_notebooks.py`` executes
the notebooks the same way and fails when the saved outputs differ from fresh ones.

The kernel is always this interpreter (ipykernel's native kernel spec for ``sys.executable``),
never a ``python3`` kernel spec that happens to be installed elsewhere on the machine. Each run
starts in an empty temporary folder, so the files a notebook writes (a heatmap PNG) stay out of
the repository.
"""

from __future__ import annotations

import copy
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

DOCS = Path(__file__).resolve().parent
CELL_TIMEOUT = 300  # seconds a cell may run before the run fails
VIEW_ID = re.compile(r"qkv-view-[0-9a-f]{12}")  # an AttentionView's random DOM id


def kernel_manager() -> KernelManager:
    """A manager for ipykernel's kernel on this interpreter: ``argv[0] == sys.executable``."""
    # kernel_dirs=[]: no installed kernel spec is looked at; ipykernel's native one remains.
    return KernelManager(kernel_name="python3",
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


def execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` run top to bottom in a fresh kernel, with its new outputs.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised; the message names the cell.
    """
    notebook = copy.deepcopy(notebook)
    with tempfile.TemporaryDirectory() as folder:
        NotebookClient(notebook, km=kernel_manager(), timeout=CELL_TIMEOUT, record_timing=False,
                       resources={"metadata": {"path": folder}}).execute()
    return notebook


def number_view_ids(notebook: nbformat.NotebookNode) -> None:
    """Give the inline views' DOM ids (random for each display) in order: ``qkv-view-000000000000``,
    ``…001``, so saving a notebook whose outputs did not change changes no byte."""
    ids: dict[str, str] = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text/html" in output.get("data", {}):
                output["data"]["text/html"] = VIEW_ID.sub(
                    lambda found: ids.setdefault(found.group(), f"qkv-view-{len(ids):012x}"),
                    output["data"]["text/html"])


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] or sorted(DOCS.glob("*.ipynb"))
    for path in paths:
        executed = execute(nbformat.read(path, as_version=4))
        number_view_ids(executed)
        nbformat.validate(executed)
        nbformat.write(executed, path)
        print(f"{path}: {len(executed.cells)} cells run, {path.stat().st_size:,} bytes saved")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
