"""``make demo``'s wall time on this machine: once into a fresh embedding cache (the backbone's LiteRT copy
converted, every embedding computed), once more with that cache warm (a second ``make demo`` into another
folder), each into a new output folder; the results table is printed with each time.

    python bench/demo_time.py [--out bench/results/demo_time.txt]

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


def run_demo(out: Path, cache: Path) -> tuple[float, str]:
    env = {**os.environ, "SOUNDLIB_CACHE_DIR": str(cache)}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "soundlib.demo", "--out", str(out), "--jobs", "2", "--quiet"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"the demo failed:\n{done.stderr[-3000:]}")
    table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
    return wall, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    lines: list[str] = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="soundlib-demo-time-") as work:
        cache = Path(work) / "cache"
        for name in ("fresh cache", "warm cache"):
            wall, table = run_demo(Path(work) / name.replace(" ", "_"), cache)
            lines += [f"{name}: {wall:.1f} s (wall, the whole `python -m soundlib.demo`)", table, ""]
            print("\n".join(lines[-3:]), flush=True)
    lines.append(f"{os.cpu_count()} CPU cores; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
