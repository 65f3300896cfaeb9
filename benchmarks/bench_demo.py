"""`thkit demo` end to end in a fresh process: wall time, peak memory, the demo's metrics, render speed.

Run: python benchmarks/bench_demo.py [--out DIR] [--cache DIR] [--threads N] [--fast]

By default everything starts from nothing: a new run folder and a new `$THKIT_CACHE` (both in a
temporary folder, deleted afterwards), so the time includes generating the synthetic subject,
encoding its audio, every training stage, both renders and the measurements. `--cache` reuses a
cache folder (the subject is then generated once); `--out` keeps the run folder (a finished run
there is reused, and only the renders and measurements are timed).

Peak memory is the child's maximum resident set size (`getrusage(RUSAGE_CHILDREN)` in this parent,
which starts no other child first). Targets (issue): <= 15 minutes (aim 10) on a 2-core CPU, peak
RSS <= 6 GB, PSNR >= 28 dB on the validation frames, mouth correlation >= 0.8, rendering >= 5
frames/s at 256 x 256. The machine may be shared: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
from pathlib import Path
import torch
if {threads}:
    torch.set_num_threads({threads})
from thkit.demo import run_demo
run_demo(Path(sys.argv[1]), fast={fast})
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="run folder to use and keep (default: a temporary one)")
    parser.add_argument("--cache", type=Path, help="THKIT_CACHE to use and keep (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the child (default: torch's own choice)")
    parser.add_argument("--fast", action="store_true", help="the demo's fast path (tiny settings)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
        out = args.out or Path(scratch) / "demo"
        cache = args.cache or Path(scratch) / "cache"
        env = {**os.environ, "THKIT_CACHE": str(cache)}
        load_before = os.getloadavg()
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-c", CHILD.format(threads=args.threads, fast=args.fast), str(out)], env=env)
        wall = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        if child.returncode != 0:
            sys.exit(f"the demo failed with exit status {child.returncode}")
        metrics = json.loads((out / "metrics.json").read_text())
    val, held_out = metrics["val"], metrics["held_out"]
    print()
    print(f"wall time        {wall:7.1f} s  ({wall / 60:.1f} min; training {metrics['seconds']['train']:.0f} s)")
    print(f"peak RSS         {peak_kib / 2**20:7.2f} GiB")
    print(f"PSNR (val)       {val['psnr_db']:7.2f} dB over {val['frames']} frames")
    print(f"SSIM (val)       {val['ssim']:7.3f}")
    print(f"mouth corr (val) {_number(val['mouth_correlation'])}  (dlib on ground-truth frames: {_number(val['mouth_correlation_ground_truth_frames'])})")
    print(f"mouth corr (held-out sentence vs generator) {_number(held_out['mouth_correlation'])}")
    print(f"render speed     {metrics['render_fps']:7.2f} frames/s at {metrics['settings']['size']} px")
    print(f"load average     {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after ({os.cpu_count()} CPUs)")


def _number(value: float | None) -> str:
    return "    n/a" if value is None else f"{value:7.3f}"


if __name__ == "__main__":
    main()
