"""How PSNR and mouth correlation grow with CPU training time: one run of the demo spec, an hour long.

Run: python benchmarks/bench_growth.py [--minutes 60] [--work DIR [--resume]] [--threads N]

The run starts as `thkit demo` does (examples/demo.yaml's stages: sync, head, lips, torso; the first
row is the demo's own result), then goes on in rounds, each a head, a lips and a torso stage twice
as long as the last round's, at lower learning rates (warm restarts: each stage decays its rate
tenfold, as every thkit stage does). After each round the run is measured as `thkit demo` measures
it (`thkit.demo.measure_run`: PSNR and SSIM of the validation frames against the ground truth, the
mouth-opening correlation there and on the held-out sentence). A round that would end after
`--minutes` of training (judged from the last round's speed) is shortened to end on time, and is
the last. Each round's figures go to `DIR/rounds.jsonl` as it ends; `--resume` goes on from there.
Minutes in the table are training only (making the synthetic subject and measuring are not
counted; encoding its audio is). The machine may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo.yaml"
ROUNDS = 6  # the spec holds this many rounds after the demo's; the time budget decides how many run
FIRST_ROUND_HEAD_STEPS = 1000
# Later rounds refine: a third of the demo's head rate, half its lips rate (the demo: 0.01, 0.002, torso 0.01).
HEAD_LR, LIPS_LR, TORSO_LR = 0.003, 0.001, 0.003


def growth_spec(folder: Path, last_round_head_steps: int | None = None) -> tuple[Path, list[list[str]]]:
    """examples/demo.yaml with ROUNDS more head/lips/torso rounds; returns it and each round's stage names.

    Round r >= 2 has FIRST_ROUND_HEAD_STEPS * 2^(r - 2) head steps, a fifth of that in lips and two
    fifths in torso; `last_round_head_steps` shortens the last round that runs (see `main`)."""
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


def shorten(spec: Path, names: list[str], head_steps: int) -> None:
    """Give the round `names` (head, lips, torso) `head_steps` head steps and its lips and torso their shares."""
    data = yaml.safe_load(spec.read_text())
    share = {"head": 1.0, "lips": 1 / 5, "torso": 2 / 5}
    for stage in data["train"]["stages"]:
        if stage["name"] in names:
            stage["steps"] = max(1, int(head_steps * share[stage["name"].rstrip("0123456789")]))
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


def steps_of(spec: Path, names: list[str]) -> int:
    stages = yaml.safe_load(spec.read_text())["train"]["stages"]
    return sum(stage["steps"] for stage in stages if stage["name"] in names and stage["name"] != "sync")


ROW = "| {round} | {stages} | {minutes:.1f} | {psnr:.2f} | {ssim:.4f} | {mouth_val} | {mouth_held_out} | {load:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="training time budget (default 60)")
    parser.add_argument("--work", type=Path, help="keep the run, the cache and the rounds' records here (default: a temporary folder)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --work after its last measured round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    from _work import work_folder

    from thkit.core.graph import load_graph
    from thkit.demo import measure_run
    from thkit.train import train
    from thkit.train.data import cache_root, resolve_dataset

    with work_folder(args.work, "bench-growth-", args.threads) as work:
        records_path, run = work / "rounds.jsonl", work / "run"
        records = [json.loads(line) for line in records_path.read_text().splitlines()] if args.resume and records_path.is_file() else []
        if not args.resume:
            records_path.unlink(missing_ok=True)
        spec, rounds = (work / "demo-growth.yaml", growth_spec(work)[1]) if records else growth_spec(work)
        resolve_dataset(load_graph(spec).spec.data, cache_root(), progress=False)  # the subject is made before the clock starts
        budget = args.minutes * 60
        for number, names in enumerate(rounds, start=1):
            if number <= len(records):
                continue
            trained = records[-1]["train_seconds"] if records else 0.0
            last = False
            if records:
                steps_per_second = 1 / records[-1]["seconds_per_step"]
                left = budget - trained
                if left * steps_per_second < 0.25 * FIRST_ROUND_HEAD_STEPS:  # less than a quarter round: stop
                    break
                head_steps = int(left * steps_per_second / (1 + 1 / 5 + 2 / 5))
                if head_steps < steps_of(spec, names[:1]):  # the round would overrun: shorten it to fit, and end there
                    shorten(spec, names, head_steps)
                    last = True
            steps = steps_of(spec, names)
            started = time.perf_counter()
            train(spec, run, stages=names, progress=False)
            elapsed = time.perf_counter() - started
            metrics = measure_run(run, work / f"round{number}")
            val, held_out = metrics["val"], metrics["held_out"]
            records.append({
                "round": number,
                "stages": ", ".join(f"{name} {steps_of(spec, [name])}" if name != "sync" else name for name in names),
                "train_seconds": trained + elapsed,
                "seconds_per_step": elapsed / steps,
                "psnr": val["psnr_db"],
                "ssim": val["ssim"],
                "mouth_val": _number(val["mouth_correlation"]),
                "mouth_held_out": _number(held_out["mouth_correlation"]),
                "load": os.getloadavg()[0],
            })  # fmt: skip
            with records_path.open("a") as out:
                out.write(json.dumps(records[-1]) + "\n")
            print(_row(records[-1]), flush=True)
            if last:
                break
    print("\n| round | stages (steps) | train min (total) | PSNR dB (val) | SSIM (val) | mouth r (val) | mouth r (held-out) | load |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(_row(record) for record in records))


def _row(record: dict) -> str:
    return ROW.format(minutes=record["train_seconds"] / 60, **{key: value for key, value in record.items() if key != "train_seconds"})


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
