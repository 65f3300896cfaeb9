"""Preprocess speed: a 3-minute 512 x 512 25 fps talking-head video into a dataset, fresh process.

Target: at most 10 minutes wall time on a 2-core CPU machine, with the peak memory reported.
The input is the synthetic subject (`thkit.data.synth.generate`, 512 px, 180 s), generated once
and kept in a cache folder, because its ground truth also gives the accuracy at this size (the
preprocess crop is not the whole frame here, so the ground truth is mapped through the crop).

Run: python benchmarks/bench_preprocess.py [--seconds 180] [--size 512] [--video VIDEO.mp4] [--keep]
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

import numpy as np

CHILD = (
    "import sys; from thkit.data.preprocess import preprocess; "
    "preprocess(sys.argv[1], sys.argv[2], fps=25, size=int(sys.argv[3]), progress=False)"
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "thkit" / "bench_preprocess"


def subject(seconds: float, size: int) -> Path:
    """The synthetic subject's folder (with video.mp4 and ground truth), generated on first use."""
    folder = CACHE / f"subject-{seconds:g}s-{size}px"
    if not (folder / "dataset.json").is_file():
        from thkit.data.synth import generate

        print(f"generating the {seconds:g} s {size} px synthetic subject in {folder} (once) ...", file=sys.stderr)
        folder.parent.mkdir(parents=True, exist_ok=True)
        generate(folder, seconds=seconds, size=size, seed=0, progress=True)
    return folder


def run(video: Path, out: Path, size: int) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, str(video), str(out), str(size)], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss": after.ru_maxrss / 1024,  # kB -> MB, the largest child
    }


def accuracy(dataset_path: Path, truth_path: Path) -> dict[str, float]:
    """Landmark px, head rotation degrees (globally aligned) and mask IoUs against the ground truth."""
    import cv2
    from scipy.spatial.transform import Rotation

    from thkit.data.layout import Dataset

    ours, truth = Dataset(dataset_path), Dataset(truth_path)
    crop = ours.meta.extra["crop"]
    scale = crop["size"] / crop["side"]
    origin = np.array([crop["x0"], crop["y0"]])
    landmarks = (np.asarray(truth.array("landmarks2d", ground_truth=True)) - origin) * scale
    landmark_px = float(np.linalg.norm(np.asarray(ours.array("landmarks2d")) - landmarks, axis=-1).mean())
    estimated, expected = np.asarray(ours.array("poses"))[:, :3, :3], np.asarray(truth.array("poses", ground_truth=True))[:, :3, :3]
    u, _, vt = np.linalg.svd(np.einsum("nij,nkj->ik", estimated, expected))
    align = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    rotation = float(np.degrees(Rotation.from_matrix(np.einsum("nji,njk->nik", estimated, align @ expected)).magnitude()).mean())
    head, person = [], []
    for i in range(0, len(ours), 10):
        window = truth.mask(i)[crop["y0"] : crop["y0"] + crop["side"], crop["x0"] : crop["x0"] + crop["side"]]
        expected_mask = cv2.resize(window, (crop["size"], crop["size"]), interpolation=cv2.INTER_NEAREST)
        mask = ours.mask(i)
        for values, store in (((2,), head), ((1, 2), person)):
            a, b = np.isin(mask, values), np.isin(expected_mask, values)
            store.append((a & b).sum() / (a | b).sum())
    return {"landmark_px": landmark_px * (1 / scale), "rotation": rotation, "head_iou": float(np.mean(head)), "fg_iou": float(np.mean(person))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--video", type=Path, help="preprocess this video instead of the synthetic subject (no accuracy then)")
    parser.add_argument("--keep", type=Path, help="write the dataset here and keep it")
    args = parser.parse_args()
    truth = None if args.video else subject(args.seconds, args.size)
    video = args.video or truth / "video.mp4"
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or Path(scratch) / "dataset"
        result = run(video, out, args.size)
        steps = dict(line.split() for line in (out / ".work" / "steps.log").read_text().splitlines())
        frames = len(list((out / "frames").iterdir()))
        scores = accuracy(out, truth) if truth is not None else None
    print(f"\n`thkit preprocess` of {video.name}: {frames} frames at {args.size} px, 25 fps\n")
    print("| video s | frames | wall s | CPU s | peak RSS MB | " + " | ".join(f"{name} s" for name in steps) + " | load avg | cores |")
    print("|" + "---:|" * (7 + len(steps)))
    print(
        f"| {frames / 25:.0f} | {frames} | {result['wall']:.0f} | {result['cpu']:.0f} | {result['rss']:.0f} | "
        + " | ".join(f"{float(value[:-1]):.0f}" for value in steps.values())
        + f" | {load:.1f} | {os.cpu_count()} |"
    )
    if scores is not None:
        print("\n| landmark error (source px) | head rotation error (deg, aligned) | head IoU | foreground IoU |")
        print("|---:|---:|---:|---:|")
        print(f"| {scores['landmark_px']:.2f} | {scores['rotation']:.2f} | {scores['head_iou']:.3f} | {scores['fg_iou']:.3f} |")


if __name__ == "__main__":
    main()
