"""Execute lessons once for the website, for those that ``make notebooks`` has not left an executed copy of.

    python -m site_src.execute --out build/executed notebooks/02_fusion.ipynb ...

Each lesson runs top to bottom in a fresh kernel under nbclient — the executor of ``jupyter nbconvert
--execute``, jupyter-cache and myst-nb — in the lesson's folder, figures inline as in JupyterLab. nbclient used to
stall at the lessons' ``interact`` cells (the kernel idle, the client waiting for the cell timeout; see
``benchmarks/nbconvert_stalls.py``): it mimicked the Output widget that ``ipywidgets.interact`` captures into and
synced it back to the kernel on the shell socket. The lessons' ``interact`` is now :func:`mmlab.widgets.interact`,
which sets its Output widget's state instead, so nbclient only records widget state (``metadata.widgets``: where
``site_src.build`` finds each widget's default figure) and sends nothing while a cell runs. The copy is stamped
with the SHA-256 of the notebook it ran (``site_src.executed_copies.stamp``) and written only when no cell failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def execute(path: Path, cell_timeout: float):
    """Run ``path`` with nbclient in its own folder; return the executed notebook (raises on a failed cell)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=int(cell_timeout),
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
    )
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "executed")
    parser.add_argument("--cell-timeout", type=float, default=600)
    args = parser.parse_args(argv)

    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    import nbformat

    from site_src.executed_copies import stamp

    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in args.notebooks:
        path = path.resolve()
        t0 = time.perf_counter()
        try:
            nb = execute(path, args.cell_timeout)
        except Exception as e:  # noqa: BLE001 - a failed lesson is reported and gets no copy; the rest still run
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
            why = f"{type(e).__name__}: {(lines[-1] if lines else '')[:120]}"
            print(f"{path.stem:28s} {time.perf_counter() - t0:7.1f} s  {why}", flush=True)
            failed.append(path.name)
            (args.out / path.name).unlink(missing_ok=True)
            continue
        print(f"{path.stem:28s} {time.perf_counter() - t0:7.1f} s  ok", flush=True)
        stamp(nb, path, "nbclient")
        nbformat.write(nb, args.out / path.name)
    if failed:
        print(f"failed: {', '.join(failed)} (no executed copy written)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
