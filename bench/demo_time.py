"""``make demo``'s wall time on this machine: once into a fresh embedding cache (the backbone's LiteRT copy
converted, every embedding computed), once more with that cache warm (a second ``make demo`` into another
folder), each into a new output folder; the results table is printed with each time.

    python bench/demo_time.py [--checkout DIR] [--out bench/results/demo_time.txt]

``--checkout DIR`` times another checkout's demo (e.g. a ``git worktree`` of an older commit) with this
environment's packages: ``python -m soundlib.demo`` runs in DIR with DIR first on ``PYTHONPATH``, so that it
and the sweep's kernels import DIR's soundlib.

Run it on a quiet machine: the demo runs two notebooks at once on 2 cores, so other load adds directly.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_demo(out: Path, cache: Path, checkout: Path = REPO) -> tuple[float, str]:
    # PYTHONPATH: the sweep's kernels, which run in their run folders, import the timed checkout's soundlib too
    env = {**os.environ, "SOUNDLIB_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(checkout), *filter(None, [os.environ.get("PYTHONPATH")])])}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "soundlib.demo", "--out", str(out), "--jobs", "2", "--quiet"],
                          cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"the demo failed:\n{done.stderr[-3000:]}")
    table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
    return wall, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the source checkout whose demo is timed")
    args = parser.parse_args(argv)
    lines: list[str] = [f"checkout: {args.checkout.resolve()}"]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="soundlib-demo-time-") as work:
        cache = Path(work) / "cache"
        for name in ("fresh cache", "warm cache"):
            wall, table = run_demo(Path(work) / name.replace(" ", "_"), cache, args.checkout.resolve())
            lines += [f"{name}: {wall:.1f} s (wall, the whole `python -m soundlib.demo`)", table, ""]
            print("\n".join(lines[-3:]), flush=True)
    lines.append(f"{os.cpu_count()} CPU cores; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
