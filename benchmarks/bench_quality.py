"""Quality across the demo-sized specs on the synthetic subject: one table, the same measurements.

Run: python benchmarks/bench_quality.py [--only demo,concat] [--work DIR] [--threads N]

Each variant is trained from nothing by `thkit.demo.run_demo` (the code `thkit demo` runs), then its
rendered validation video (the held-out last 1/11 of the subject, driven by its own audio, poses and
blinks) is measured by `thkit eval` against the run:

- `demo`: examples/demo.yaml, DAMC's structure (phones + sync, CSFM, triplane-nerf, torso-2d);
- `concat`: the same with CSFM replaced by plain `concat` fusion (the ablation DAMC's paper makes);
- `landmark-demo`: examples/landmark-demo.yaml, the decoupled Gaussian-landmark path;
- `hybrid`: examples/hybrid.yaml, CSFM code and predicted landmarks into one landmark-nerf.

Columns: PSNR and SSIM of the whole frames; LMD (mean-centred mouth landmarks, dlib, pixels at the
subject's 256 px); mouth-opening correlation with the ground truth on the validation frames and,
for the held-out sentence, with the mouth track the subject's generator makes for that audio; the
audio-visual offset (frames) at which the rendered mouth best follows the audio envelope, beside the
same offset measured on the ground-truth frames (0 is not expected: speech leads the mouth's
opening differently per phone; equal offsets are); training and total minutes. The subject is
generated once into a shared cache. Takes about 5 x 8 minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def concat_ablation(folder: Path) -> Path:
    """examples/demo.yaml with its CSFM fusion replaced by concat (learned smoothing, as ER-NeRF's)."""
    spec = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    spec["name"] = "demo-concat"
    spec["nodes"]["fuse"] = {"kind": "fusion", "type": "concat", "params": {"smooth": 8}, "inputs": spec["nodes"]["fuse"]["inputs"]}
    path = folder / "demo-concat.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def variants(folder: Path) -> dict[str, Path]:
    return {
        "demo": EXAMPLES / "demo.yaml",
        "concat": concat_ablation(folder),
        "landmark-demo": EXAMPLES / "landmark-demo.yaml",
        "hybrid": EXAMPLES / "hybrid.yaml",
    }


def measure(name: str, spec: Path, work: Path) -> list[str]:
    from thkit.demo import run_demo
    from thkit.eval.measure import measure_video

    started = time.perf_counter()
    metrics = run_demo(work / name, spec=spec)
    minutes = (time.perf_counter() - started) / 60
    evaluation = measure_video(metrics["videos"]["val"], metrics["run"])
    summary = evaluation.summary

    def number(value: object, digits: int) -> str:
        return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"

    return [
        name,
        number(metrics["val"]["psnr_db"], 2),
        number(metrics["val"]["ssim"], 4),
        number(summary.get("mouth_lmd"), 2),
        number(metrics["val"]["mouth_correlation"], 3),
        number(metrics["held_out"]["mouth_correlation"], 3),
        f"{number(summary.get('envelope_offset'), 0)} ({number(summary.get('truth_envelope_offset'), 0)})",
        number(metrics["seconds"]["train"] / 60, 1),
        number(minutes, 1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated variants (default: all): demo, concat, landmark-demo, hybrid")
    parser.add_argument("--work", type=Path, help="keep the runs and the cache here (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    from _work import work_folder

    with work_folder(args.work, "bench-quality-", args.threads) as work:
        chosen = variants(work)
        if args.only:
            chosen = {name: chosen[name] for name in args.only.split(",")}
        rows = [measure(name, spec, work) for name, spec in chosen.items()]
    print(
        "| variant | PSNR dB | SSIM | LMD mouth px | mouth r (val) | mouth r (held-out) | envelope offset, frames (truth's) "
        "| train min | total min |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
