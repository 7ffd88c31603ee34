"""How long each lesson takes and how much memory it needs, as a learner runs it: one notebook after another,
each in a fresh kernel, every cell in order.

    python benchmarks/course_runtime.py                 # every notebooks/NN_*.ipynb -> benchmarks/RESULTS.md
    python benchmarks/course_runtime.py notebooks/00_setup.ipynb --no-write   # one lesson, print only

Wall time runs from the kernel's start to the end of the last cell. Peak memory is the kernel's peak resident
set size (Linux ``VmHWM``, the kernel's high-water mark) or, where that is unknown or lower, the largest sum of
resident memory over the kernel and its child processes, sampled every 0.2 s. Targets (2 CPU cores): each
lesson under 90 s (deployment, contrastive, scale-out and capstone: 120 s), the course under 10 minutes, under 2 GB
per lesson.
Kernels inherit this process's environment: set ``OMP_NUM_THREADS`` to the machine's cores (CI: 2).
On a machine with CUDA the table goes to its own section, ``course_runtime_gpu``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

LESSON_TARGET_S = 90.0
# deployment (torch.compile, export), contrastive, scale-out (process groups) and the capstone
LESSON_TARGET_OVERRIDES_S = {"05": 120.0, "07": 120.0, "08": 120.0, "09": 120.0}
COURSE_TARGET_S = 600.0
MEMORY_TARGET_MB = 2048.0
MB = 1024 * 1024


def lesson_target(path: Path) -> float:
    return LESSON_TARGET_OVERRIDES_S.get(path.name[:2], LESSON_TARGET_S)


def _vm_hwm(pid: int) -> int | None:
    """Peak resident set size of ``pid`` in bytes (Linux ``VmHWM``), or ``None`` where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakMemory:
    """Samples the resident memory of a process tree in a background thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil  # comes with ipykernel

        self.proc = psutil.Process(pid)
        self.pid, self.interval, self.peak, self.hwm, self.cpu_s = pid, interval, 0, None, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return
        total, cpu = 0, 0.0
        for p in procs:
            try:
                total += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)
        self.cpu_s = max(self.cpu_s, cpu)
        hwm = _vm_hwm(self.pid)
        if hwm is not None:
            self.hwm = hwm

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> int:
        """Stop sampling (call before the kernel exits) and return the peak in bytes."""
        self._sample()
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.hwm or 0)


def _first_line(source: str) -> str:
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    line = lines[0] if lines else source.strip().splitlines()[0] if source.strip() else ""
    return line if len(line) <= 48 else line[:45] + "..."


class CellError(RuntimeError):
    """A cell raised, timed out, or the kernel died while it ran."""


def _run_cell(km, kc, source: str, timeout: float) -> list:
    """Execute ``source``; collect its outputs; raise :class:`CellError` on an error, a timeout or a dead kernel.

    A blocking client with short polls, the way nbval drives kernels. This report used nbclient's asyncio client
    before and hung at ``interact`` cells now and then (lesson 7 in 2 of 3 full runs, lesson 4 once): the kernel
    had finished, the client never saw the execute reply and waited for the cell timeout, as reported upstream
    (jupyter/nbclient#312, jupyter/nbconvert#1921 and #2029). Here no wait lasts more than half a second; after
    each, the deadline, the kernel's liveness and the shell reply are checked again.
    """
    from queue import Empty

    import nbformat

    msg_id = kc.execute(source, store_history=True, allow_stdin=False, stop_on_error=True)
    deadline = time.monotonic() + timeout
    outputs, error, idle, reply, reply_at = [], None, False, None, 0.0
    # Read iopub (outputs) until the kernel reports idle for this request and the shell has replied; after the
    # reply, wait at most 5 s more for the idle status, as nbclient does.
    while not (idle and reply is not None):
        now = time.monotonic()
        if now > deadline:
            raise CellError(f"CellTimeoutError: cell ran over {timeout:.0f} s")
        if reply is not None and now - reply_at > 5.0:
            break
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except Empty:
            if not km.is_alive():
                raise CellError("DeadKernelError: the kernel died") from None
            msg = None
        if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status":
                idle = idle or content["execution_state"] == "idle"
            elif kind == "clear_output":
                outputs.clear()
            elif kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append(nbformat.v4.output_from_msg(msg))
                if kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
        while reply is None:
            try:
                shell = kc.get_shell_msg(timeout=0)
            except Empty:
                break
            if shell["parent_header"].get("msg_id") == msg_id:
                reply, reply_at = shell["content"], time.monotonic()
    if reply["status"] != "ok":
        raise CellError(f"CellExecutionError: {error or reply.get('ename', '')}")
    return outputs


def run_lesson(path: Path, cell_timeout: float, keep_dir: Path | None = None) -> dict:
    """Execute ``path`` top to bottom in a fresh kernel; return wall time, peak memory and the slowest cell."""
    import nbformat
    from jupyter_client.manager import start_new_kernel

    nb = nbformat.read(path, as_version=4)
    row = {"lesson": path.stem, "target_s": lesson_target(path), "error": None}
    cells: list[tuple[float, int, str]] = []
    memory = None
    t0 = time.perf_counter()
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(path.parent))
    try:
        memory = PeakMemory(km.provisioner.pid)
        count = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            c0 = time.perf_counter()
            count += 1
            try:
                cell.outputs = _run_cell(km, kc, cell.source, cell_timeout)
            except CellError as e:
                row["error"] = f"cell {index}: {e}"[:160]
                break
            finally:
                cell.execution_count = count
                cells.append((time.perf_counter() - c0, index, _first_line(cell.source)))
    finally:
        row["peak_bytes"] = memory.stop() if memory else 0  # while the kernel is still alive
        row["cpu_s"] = memory.cpu_s if memory else 0.0
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    row["wall_s"] = time.perf_counter() - t0
    row["slowest"] = max(cells) if cells else None
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep_dir / path.name)
    return row


def _flags(row: dict) -> list[str]:
    """Problems of one lesson. Time is judged in reference seconds (wall time scaled by the calibration
    workload), so that a slow machine is not taken for a slow lesson; the raw wall time is shown beside it."""
    flags = []
    if row["error"]:
        flags.append(f"**failed** ({row['error']})")
    ref_s = row.get("ref_s", row["wall_s"])
    if ref_s > row["target_s"]:
        flags.append(f"**over time** (+{ref_s - row['target_s']:.0f} reference s)")
    if row["peak_bytes"] / MB > MEMORY_TARGET_MB:
        flags.append("**over memory**")
    return flags


def _overrides_text() -> str:
    """``LESSON_TARGET_OVERRIDES_S`` in words, e.g. ``05, 07, 08 and 09: 120 s``."""
    by_target: dict[float, list[str]] = {}
    for lesson, target in sorted(LESSON_TARGET_OVERRIDES_S.items()):
        by_target.setdefault(target, []).append(lesson)
    parts = []
    for target, names in by_target.items():
        listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        parts.append(f"{listed}: {target:.0f} s")
    return "; ".join(parts)


def render(rows: list[dict], command: str, note: str | None) -> str:
    from _results import REFERENCE_CALIBRATION_S, calibrate, machine

    gpu = "CUDA" if "no GPU" not in machine() else "CPU"
    lines = [
        f"## Course runtime ({gpu}): every lesson in a fresh kernel, one after another",
        "",
        f"Command: `{command}` · {machine()} · OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} · "
        f"{os.cpu_count()} CPUs",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        f"Targets: each lesson under {LESSON_TARGET_S:.0f} s ({_overrides_text()}), the course under "
        f"{COURSE_TARGET_S / 60:.0f} min, peak memory under {MEMORY_TARGET_MB / 1024:.0f} GB per lesson. "
        "Wall time includes the kernel's start; CPU time is the kernel's (user + system, its process tree), which "
        "stays about the same when other jobs share the machine while wall time does not; memory is the "
        "kernel's peak resident set.",
        f"Machines of one kind differ in speed from day to day: the calibration workload (`benchmarks/_results.py`) "
        f"took {calibrate():.3f} s in this run (median of samples taken before each lesson) and "
        f"{REFERENCE_CALIBRATION_S:.3f} s on the reference machine, so "
        f"*reference s* = wall time × {REFERENCE_CALIBRATION_S / calibrate():.2f} and *× calib* = wall time / "
        "calibration time compare across machines; targets are checked on reference seconds.",
        "",
        "| lesson | wall time | reference s | × calib | CPU time | target | peak memory | slowest cell | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        slow = f"{r['slowest'][0]:.1f} s: cell {r['slowest'][1]} `{r['slowest'][2]}`" if r["slowest"] else ""
        slow = slow.replace("|", "\\|")
        result = "; ".join(_flags(r)) or "ok"
        lines.append(
            f"| {r['lesson']} | {r['wall_s']:.1f} s | {r['ref_s']:.1f} s | {r['wall_s'] / calibrate():.0f} | "
            f"{r['cpu_s']:.1f} s | {r['target_s']:.0f} s | {r['peak_bytes'] / MB:,.0f} MB | {slow} | {result} |"
        )
    total = sum(r["wall_s"] for r in rows)
    total_ref = sum(r["ref_s"] for r in rows)
    bad = [r["lesson"] for r in rows if _flags(r)]
    course = "ok" if total_ref <= COURSE_TARGET_S else f"**over time** (+{total_ref - COURSE_TARGET_S:.0f} ref. s)"
    if bad:
        course += f"; lessons off target: {', '.join(bad)}"
    peak = max((r["peak_bytes"] for r in rows), default=0) / MB
    cpu = sum(r["cpu_s"] for r in rows)
    name = f"**course ({len(rows)} lesson{'s' * (len(rows) != 1)})**"
    lines.append(
        f"| {name} | **{total:.1f} s** | **{total_ref:.1f} s** | {total / calibrate():.0f} | {cpu:.1f} s | "
        f"{COURSE_TARGET_S:.0f} s | max {peak:,.0f} MB | | {course} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--cell-timeout", type=float, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument("--keep-executed", type=Path, help="save each executed notebook (with outputs) here")
    parser.add_argument("--note", help="a line to add under the table's header, e.g. how loaded the machine was")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a lesson misses a target")
    args = parser.parse_args(argv)

    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as in JupyterLab
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        parser.error("no notebooks found")
    from _results import calibrate, reference_seconds, sample_calibration

    print(f"calibration workload: {calibrate():.3f} s (median of 5; re-sampled before each lesson)", flush=True)
    rows = []
    for path in notebooks:
        sample_calibration(2)
        print(f"{path.stem:28s} ", end="", flush=True)
        row = run_lesson(path, args.cell_timeout, args.keep_executed)
        row["ref_s"] = reference_seconds(row["wall_s"])
        rows.append(row)
        flags = "; ".join(_flags(row)) or "ok"
        print(
            f"{row['wall_s']:7.1f} s wall {row['ref_s']:7.1f} reference s {row['cpu_s']:7.1f} s CPU "
            f"{row['peak_bytes'] / MB:7,.0f} MB  {flags}"
        )
    for row in rows:  # judged on the calibration over the whole run
        row["ref_s"] = reference_seconds(row["wall_s"])
    named = [shlex.quote(str(p.resolve().relative_to(ROOT))) for p in args.notebooks]
    command = " ".join(["python benchmarks/course_runtime.py", *named])
    body = render(rows, command, args.note)
    print()
    print(body)
    if not args.no_write:
        import torch
        from _results import write_section

        write_section("course_runtime_gpu" if torch.cuda.is_available() else "course_runtime", body)
        print(f"\nwritten to {Path('benchmarks/RESULTS.md')}")
    failed = any(r["error"] for r in rows)
    missed = any(_flags(r) for r in rows) or sum(r["ref_s"] for r in rows) > COURSE_TARGET_S
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
