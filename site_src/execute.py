"""Execute lessons once for the website, for those that ``make notebooks`` has not left an executed copy of.

    python -m site_src.execute --out build/executed notebooks/02_fusion.ipynb ...

Each lesson runs top to bottom in a fresh kernel with the runtime report's runner
(``benchmarks/course_runtime.run_lesson``: a blocking client with short polls, which does not stall where
nbclient's asyncio client can, see ``benchmarks/nbconvert_stalls.py``), figures inline as in JupyterLab. The
copy is stamped with the SHA-256 of the notebook it ran (``site_src.executed_copies.stamp``) and written only
when no cell failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import nbformat
    from course_runtime import run_lesson

    from site_src.executed_copies import stamp

    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in args.notebooks:
        path = path.resolve()
        with tempfile.TemporaryDirectory() as tmp:
            row = run_lesson(path, args.cell_timeout, Path(tmp))
            print(f"{path.stem:28s} {row['wall_s']:7.1f} s  {row['error'] or 'ok'}", flush=True)
            if row["error"]:
                failed.append(path.name)
                (args.out / path.name).unlink(missing_ok=True)
                continue
            nb = nbformat.read(Path(tmp) / path.name, as_version=4)
        stamp(nb, path, "course_runtime")
        nbformat.write(nb, args.out / path.name)
    if failed:
        print(f"failed: {', '.join(failed)} (no executed copy written)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
