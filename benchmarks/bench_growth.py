"""How PSNR and mouth correlation grow with CPU training time: one run of the demo spec, an hour long.

Run: python benchmarks/bench_growth.py [--minutes 60] [--work DIR] [--threads N]

The run starts as `thkit demo` does (examples/demo.yaml's stages: sync, head, lips, torso; the first
row is the demo's own result), then goes on in rounds, each a head, a lips and a torso stage twice
as long as the last round's, at lower learning rates (warm restarts: each stage decays its rate
tenfold, as every thkit stage does). After each round the run is measured as `thkit demo` measures
it (`thkit.demo.measure_run`: PSNR and SSIM of the validation frames against the ground truth, the
mouth-opening correlation there and on the held-out sentence). A round is not started when it would
end after `--minutes` of training, judged from the last round's speed. Minutes in the table are
training only (making the synthetic subject and measuring are not counted; encoding its audio is). The machine may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo.yaml"
ROUNDS = 6  # the spec holds this many rounds after the demo's; the time budget decides how many run
FIRST_ROUND_HEAD_STEPS = 1000
# Later rounds refine: a third of the demo's head rate, half its lips rate (the demo: 0.01, 0.002, torso 0.01).
HEAD_LR, LIPS_LR, TORSO_LR = 0.003, 0.001, 0.003


def growth_spec(folder: Path) -> tuple[Path, list[list[str]]]:
    """examples/demo.yaml with ROUNDS more head/lips/torso rounds; returns it and each round's stage names."""
    spec = yaml.safe_load(DEMO.read_text())
    spec["name"] = "demo-growth"
    stages = spec["train"]["stages"]
    by_name = {stage["name"]: stage for stage in stages}
    rounds = [[stage["name"] for stage in stages]]
    for index in range(ROUNDS):
        head_steps = FIRST_ROUND_HEAD_STEPS * 2**index
        added = [
            {**by_name["head"], "name": f"head{index + 2}", "steps": head_steps, "lr": HEAD_LR},
            {**by_name["lips"], "name": f"lips{index + 2}", "steps": head_steps // 5, "lr": LIPS_LR},
            {**by_name["torso"], "name": f"torso{index + 2}", "steps": head_steps * 2 // 5, "lr": TORSO_LR},
        ]
        stages += added
        rounds.append([stage["name"] for stage in added])
    path = folder / "demo-growth.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, rounds


def steps_of(spec: Path, names: list[str]) -> int:
    stages = yaml.safe_load(spec.read_text())["train"]["stages"]
    return sum(stage["steps"] for stage in stages if stage["name"] in names and stage["name"] != "sync")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="training time budget (default 60)")
    parser.add_argument("--work", type=Path, help="keep the run and the cache here (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    import torch

    from thkit.core.graph import load_graph
    from thkit.demo import measure_run
    from thkit.train import train
    from thkit.train.data import cache_root, resolve_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("THKIT_CACHE", str(work / "cache"))
        spec, rounds = growth_spec(work)
        resolve_dataset(load_graph(spec).spec.data, cache_root(), progress=False)  # the subject is made before the clock starts
        run, trained, seconds_per_step = work / "run", 0.0, None
        for number, names in enumerate(rounds, start=1):
            steps = steps_of(spec, names)
            if seconds_per_step is not None and trained + seconds_per_step * steps > args.minutes * 60:
                break
            started = time.perf_counter()
            train(spec, run, stages=names, progress=False)
            elapsed = time.perf_counter() - started
            trained += elapsed
            seconds_per_step = elapsed / steps
            metrics = measure_run(run, work / f"round{number}")
            val, held_out = metrics["val"], metrics["held_out"]
            rows.append(
                f"| {number} | {', '.join(names)} | {trained / 60:.1f} | {val['psnr_db']:.2f} | {val['ssim']:.4f} "
                f"| {_number(val['mouth_correlation'])} | {_number(held_out['mouth_correlation'])} | {os.getloadavg()[0]:.1f} |"
            )
            print(rows[-1], flush=True)
    print("\n| round | stages | train min (total) | PSNR dB (val) | SSIM (val) | mouth r (val) | mouth r (held-out) | load |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
