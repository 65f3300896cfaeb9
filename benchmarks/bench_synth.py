"""Synthetic subject speed: `generate(seconds=60, size=256)` (what `thkit synth` runs), fresh process.

Target: 60 s of 256 px subject in at most 60 s wall time on a 2-core CPU machine.
Each run is a new Python process (imports, voice loading and all), so the figures are what a user
waits for. Also reported: CPU time (user + system) and the load average, because wall time on a
shared machine depends on what else runs.

Run: python benchmarks/bench_synth.py [--seconds 60] [--size 256] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = (
    "import sys; from thkit.data.synth import generate; "
    "generate(sys.argv[1], seconds=float(sys.argv[2]), size=int(sys.argv[3]), seed=0, progress=False)"
)


def run_once(seconds: float, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "subject"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD, str(out), str(seconds), str(size)], check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        frames = len(list((out / "frames").iterdir()))
        megabytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss": after.ru_maxrss / 1024,  # kB on Linux -> MB; the largest child so far
        "frames": frames,
        "disk": megabytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print("| seconds | size | frames | wall s | CPU s | peak RSS MB | output MB | load avg (1 min) | cores |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _ in range(args.repeats):
        load = os.getloadavg()[0]
        result = run_once(args.seconds, args.size)
        print(
            f"| {args.seconds:g} | {args.size} | {result['frames']} | {result['wall']:.1f} | {result['cpu']:.1f} "
            f"| {result['rss']:.0f} | {result['disk']:.1f} | {load:.1f} | {os.cpu_count()} |"
        )


if __name__ == "__main__":
    main()
