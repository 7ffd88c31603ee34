"""Does the standard executor stall on the lessons? Each lesson under ``jupyter nbconvert --execute``, N times.

    python benchmarks/nbconvert_stalls.py                          # every lesson, 5 runs each
    python benchmarks/nbconvert_stalls.py notebooks/07_contrastive.ipynb --runs 5 --ratio 1.5
    python benchmarks/nbconvert_stalls.py --synthetic --variant ipywidgets_interact --variant mmlab_interact

Site builders and learners execute notebooks through nbclient (``jupyter nbconvert --execute``, jupyter-cache,
myst-nb, mkdocs-jupyter). nbclient can miss a cell's ``execute_reply``: the kernel has finished and is idle, and
the client waits — for ever without a cell timeout (nbconvert's default), else until the timeout expires, when
pyzmq polls the socket once more and finds the reply (jupyter/nbclient#312).

What triggers it (traced on 2026-12-04; ``--synthetic`` reproduces it in a few minutes): a display into an
``Output`` widget near the end of a cell, which is what every ``interact`` does (its figure goes into the widget's
Output). nbclient mimics
the Output widget in the client and syncs its state back to the kernel with a ``comm_msg`` on the *shell* socket
(``nbclient.output_widget.OutputWidget._publish_msg``), sent by ``jupyter_client.Session.send`` through a
synchronous shadow of the asyncio socket. When the kernel's ``execute_reply`` arrives during that send, the send
consumes the socket's edge-triggered wake-up, and the pending asyncio ``poll`` of the shell socket never fires.
Measured with synthetic notebooks (40 cells each, ``nbconvert --ExecutePreprocessor.timeout=20``): a 0.3 s cell
that ends by drawing a figure into an Output widget stalled (about 19.6 s each) in 2 of 120 cells under nbconvert and
7 of 160 cells under nbclient; the same cell drawing the figure without an Output widget, 0 of 120; the same
Output-widget cell with 0.5 s of work after the display, 0 of 160; and nbclient with one line patched (after the
shadow send, ``shell_channel.socket._schedule_remaining_events()``, the wake-up pyzmq's own send would have
scheduled), 0 of 200.

The fix in the course: the lessons' ``interact`` is :func:`mmlab.widgets.interact`, ipywidgets' controls with the
function's figure set as the Output widget's *state* (``out.outputs = (...)``, a kernel-to-client ``comm_msg`` on
iopub) instead of captured by ``with out:``. nbclient then has no capture to mimic and sends nothing on the shell
socket while a cell runs (``tests/test_widgets.py`` counts nbclient's output hooks: 0 for mmlab's ``interact``, at
least 1 for ipywidgets'). Measured on 2026-12-04 with ``--synthetic --runs 5`` (40 widget cells per run, each
``busy(0.3)`` then ``interact(widget_figure, k=IntSlider(1, 1, 5))``, nbconvert, cell timeout 20 s, the 2-core
course machine under ``flock``), in three batches: ``ipywidgets_interact`` 2 stalls in 200 cells, then 0 in 200;
``mmlab_interact`` 0 in 200 and 0 in 200; with a lesson-sized figure (``*_big``, a ~100 kB PNG) 2 in 200 against 0
in 200. In all, ``ipywidgets.interact`` 4 stalls in 600 cells, ``mmlab.widgets.interact`` 0 in 600: what the
mechanism predicts, but counts this small are not proof on their own (if both had the same rate, all four
stalls would land on one side with probability about 1/16; the rate also varies between batches). The
structural part — no shell traffic, hence no race — is what the unit test checks.

This script runs each lesson ``--runs`` times in a row, exactly as a learner would (``jupyter nbconvert --to
notebook --execute``, in the lesson's folder, inline figures), and checks each run's wall time against the
lesson's time in the runtime report (``benchmarks/RESULTS.md``, section ``course_runtime``: a blocking client
that does not stall): a run over ``--ratio`` times that time fails. Every run is killed after ``--limit`` times the
report's time, so a stall cannot hang CI; ``--cell-timeout`` (default 600 s) is passed to nbconvert.

Where a run was slow, the executed notebook says where: nbclient records the kernel's timestamps of each cell
(``metadata.execution``), so the gap between a cell's ``iopub.status.idle`` and the next cell's
``iopub.status.busy`` is time the client spent waiting after the kernel had finished. The script prints the
largest such gap of each run with its cell (index, first line), which is how the stalls were traced to their cells.

Exit status 1 when a run failed, was killed or took over ``--ratio`` times its reference. Run it on an otherwise
idle machine (``flock /tmp/nb.lock`` on the course's shared machines): it times wall clocks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def report_times(results: Path = ROOT / "benchmarks" / "RESULTS.md") -> dict[str, float]:
    """Wall time of each lesson in the runtime report's CPU table (``| 00_setup | 29.8 s | ...``)."""
    text = results.read_text() if results.is_file() else ""
    section = text.split("## Course runtime (CPU)", 1)[-1] if "## Course runtime (CPU)" in text else ""
    times = {}
    for m in re.finditer(r"^\| (\d\d_\w+) \| ([\d.]+) s \|", section.split("\n## ", 1)[0], flags=re.M):
        times[m.group(1)] = float(m.group(2))
    return times


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def client_gaps(nb: dict) -> list[tuple[float, int, str]]:
    """Per code cell: seconds between the kernel going idle after it and starting the next cell (client time)."""
    code = [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    gaps = []
    for (i, cell), (_, nxt) in zip(code, code[1:]):
        idle = _ts(cell.get("metadata", {}).get("execution", {}).get("iopub.status.idle"))
        busy = _ts(nxt.get("metadata", {}).get("execution", {}).get("iopub.status.busy"))
        if idle is not None and busy is not None:
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            first = next((ln for ln in src.splitlines() if ln.strip() and not ln.startswith("#")), "")
            gaps.append((busy - idle, i, first[:60]))
    return gaps


def run_once(path: Path, limit_s: float, cell_timeout: float, out_dir: Path) -> dict:
    """One ``jupyter nbconvert --to notebook --execute`` of ``path``; wall time, status and the largest gap."""
    out = out_dir / f"{path.stem}.executed.ipynb"
    out.unlink(missing_ok=True)
    cmd = [
        str(Path(sys.executable).with_name("jupyter")),
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        f"--ExecutePreprocessor.timeout={int(cell_timeout)}",
        "--output",
        str(out),
        path.name,
    ]
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline", PYDEVD_DISABLE_FILE_VALIDATION="1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=path.parent, env=env, capture_output=True, text=True, timeout=limit_s)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        status = f"killed after {limit_s:.0f} s (stalled)"
    row = {"wall_s": time.perf_counter() - t0, "status": status, "gap": None}
    if out.is_file():
        gaps = client_gaps(json.loads(out.read_text()))
        row["gap"] = max(gaps) if gaps else None
    return row


SYNTHETIC_SETUP = """import time
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from ipywidgets import IntSlider, Output, fixed
from ipywidgets import interact as ipywidgets_interact
from matplotlib.figure import Figure
from mmlab.widgets import interact as mmlab_interact


def busy(seconds):
    t = time.time()
    while time.time() - t < seconds:
        pass


def figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    plt.show()


def widget_figure(k=1, big=False):
    fig = Figure(figsize=(6, 4) if big else (3, 2))
    ax = fig.subplots()
    if big:  # a lesson-sized PNG (~100 kB in base64; the lessons' are 60-260 kB), not a 13 kB line plot
        ax.imshow(np.random.default_rng(k).random((100, 150)))
    else:
        ax.plot(range(k + 2))
    return fig
"""
# one cell body per variant, repeated 40 times between cells of plain work
SYNTHETIC = {
    "output_widget_at_end": "out = Output()\ndisplay(out)\nbusy(0.3)\nwith out:\n    figure()",
    "plain_figure_at_end": "busy(0.3)\nfigure()",
    "output_widget_then_work": "out = Output()\ndisplay(out)\nbusy(0.3)\nwith out:\n    figure()\nbusy(0.5)",
    # a lesson's widget cell: work, then interact drawing its figure at the end of the cell
    "ipywidgets_interact": "busy(0.3)\n_ = ipywidgets_interact(widget_figure, k=IntSlider(1, 1, 5))",
    "mmlab_interact": "busy(0.3)\n_ = mmlab_interact(widget_figure, k=IntSlider(1, 1, 5))",
    "ipywidgets_interact_big": "busy(0.3)\n_ = ipywidgets_interact(widget_figure, k=IntSlider(1, 1, 5), "
    "big=fixed(True))",
    "mmlab_interact_big": "busy(0.3)\n_ = mmlab_interact(widget_figure, k=IntSlider(1, 1, 5), big=fixed(True))",
}


def synthetic(runs: int, out_dir: Path, variants: list[str] | None = None) -> int:
    """Run the synthetic variants under nbconvert (cell timeout 20 s); count client waits over 5 s per variant."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    stalls = {}
    unknown = sorted(set(variants or []) - set(SYNTHETIC))
    if unknown:
        raise ValueError(f"variants: unknown {unknown}; choose from {sorted(SYNTHETIC)}")
    for name, body in SYNTHETIC.items():
        if variants and name not in variants:
            continue
        cells = [new_code_cell(SYNTHETIC_SETUP)]
        for _ in range(40):
            cells += [new_code_cell("s = sum(i * i for i in range(300000))"), new_code_cell(body)]
        path = out_dir / f"{name}.ipynb"
        nbformat.write(new_notebook(cells=cells, metadata=meta), path)
        stalls[name] = 0
        for k in range(runs):
            row = run_once(path, 600, 20, out_dir)
            executed = out_dir / f"{name}.executed.ipynb"
            gaps = client_gaps(json.loads(executed.read_text())) if executed.is_file() else []
            n = sum(g > 5 for g, _, _ in gaps)
            stalls[name] += n
            print(f"{name:26s} run {k + 1}/{runs} {row['wall_s']:6.1f} s  stalls {n}  {row['status'][:60]}", flush=True)
    print()
    for name, n in stalls.items():
        print(f"{name:26s} {n} stalls in {40 * runs} cells")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--runs", type=int, default=5, help="executions of each lesson in a row (default 5)")
    parser.add_argument("--ratio", type=float, default=1.5, help="allowed wall time / report time (default 1.5)")
    parser.add_argument("--limit", type=float, default=4.0, help="kill a run after this × report time (default 4)")
    parser.add_argument("--cell-timeout", type=float, default=600, help="nbconvert's per-cell timeout (s)")
    parser.add_argument("--json", type=Path, help="also write every run's numbers here")
    parser.add_argument("--synthetic", action="store_true", help="run the synthetic variants instead (see above)")
    parser.add_argument("--variant", action="append", choices=sorted(SYNTHETIC), help="with --synthetic: only these")
    args = parser.parse_args(argv)
    if args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            return synthetic(args.runs, Path(tmp), args.variant)

    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    ref = report_times()
    rows, bad = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for path in notebooks:
            ref_s = ref.get(path.stem)
            if ref_s is None:
                print(f"{path.stem}: no time in benchmarks/RESULTS.md (make runtime-report); limit 600 s, no ratio")
            limit = args.limit * ref_s if ref_s else 600.0
            for k in range(args.runs):
                row = run_once(path, limit, args.cell_timeout, Path(tmp))
                row.update(lesson=path.stem, run=k + 1, ref_s=ref_s)
                ratio = row["wall_s"] / ref_s if ref_s else float("nan")
                ok = row["status"] == "ok" and (ref_s is None or ratio <= args.ratio)
                gap = row["gap"]
                gap_txt = f"largest client wait {gap[0]:5.1f} s after cell {gap[1]} `{gap[2]}`" if gap else ""
                print(
                    f"{path.stem:24s} run {k + 1}/{args.runs} {row['wall_s']:7.1f} s  "
                    f"x{ratio:4.2f} of {ref_s or 0:.1f} s  {'ok  ' if ok else 'SLOW'} {row['status'][:80]}  {gap_txt}",
                    flush=True,
                )
                rows.append(row)
                if not ok:
                    bad.append(f"{path.stem} run {k + 1}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"\n{len(rows) - len(bad)} passed, {len(bad)} failed" + (f": {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
