"""Run every benchmarks/bench_*.py and append their tables to benchmarks/RESULTS.md.

Run: python benchmarks/run_all.py [--only core,synth] [--skip growth,quality] [--dry-run]
Each section records the date, the machine (CPU model, cores, memory) and the git commit.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    return (result.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names, e.g. core,synth (default: all)")
    parser.add_argument("--skip", help="comma-separated benchmark names to leave out, e.g. growth,quality")
    parser.add_argument("--dry-run", action="store_true", help="print the results, do not append them")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        scripts = [script for script in scripts if script.stem.removeprefix("bench_") in wanted]
    if args.skip:
        unwanted = {name.strip() for name in args.skip.split(",")}
        scripts = [script for script in scripts if script.stem.removeprefix("bench_") not in unwanted]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"\n## {stamp}, commit {commit()}\n", f"Machine: {machine()}\n"]
    for script in scripts:
        print(f"running {script.name} ...", flush=True)
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        body = result.stdout.strip() if result.returncode == 0 else f"failed (exit {result.returncode}):\n```\n{result.stderr.strip()[-2000:]}\n```"
        section.append(f"\n### {script.stem.removeprefix('bench_')} (`python benchmarks/{script.name}`)\n\n{body}\n")
        print(body, flush=True)
    if not args.dry_run:
        with RESULTS.open("a") as results:
            if results.tell() == 0:
                results.write("# Benchmark results\n\nAppended by `python benchmarks/run_all.py`; newest last.\n")
            results.write("".join(section))
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
