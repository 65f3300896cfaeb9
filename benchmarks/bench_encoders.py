"""Audio encoder speed (multiple of real time) and peak memory, on this machine's CPU.

Run: python benchmarks/bench_encoders.py [--minutes 10] [--threads 2]

The audio is piper TTS speech (the offline voice thkit speaks `--text` with) repeated to the
requested length; HuBERT is a base-size model (HubertConfig() defaults, 94 M parameters) with
random weights, since no pretrained weights can be downloaded here: its speed and memory are
those of the real base checkpoint. Each encoder runs in a fresh process: compute time excludes
imports and model loading (a 1 s warm-up runs first), and peak memory is that process's peak
resident set size (VmHWM), interpreter, torch and model included (the phones encoder's worker
processes, forked for recognition of long audio, are not in it: each is a copy of this process
that adds about one pocketsphinx decoder).

Targets: HuBERT base >= 10x real time, mel, formant and phones >= 50x; HuBERT < 2 GB for
10 minutes of audio.

The machine may be shared: the load average is printed, and CPU seconds (all threads of the
process and of its worker processes) are given beside wall time. For the single-threaded analyses
(formant, phones' alignment) audio seconds per CPU second is the speed an idle core gives; for
torch with two threads, and phones' recognition in two worker processes, two idle cores give at
most twice it.
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
import warnings
from pathlib import Path

import numpy as np

SPEECH = (
    "Hello world, this is a test of speech synthesis. The quick brown fox jumps over the lazy dog. "
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells. "
    "Peter Piper picked a peck of pickled peppers. How much wood would a woodchuck chuck?"
)
# name -> (encoder type, params (with "{weights}" the random HuBERT folder), speed target x, memory target MB)
CASES = {
    "mel": ("mel", {}, 50, None),
    "hubert (base, random)": ("hubert", {"weights": "{weights}"}, 10, 2048),  # precision auto: bfloat16 where native
    "hubert (base, random, float32)": ("hubert", {"weights": "{weights}", "precision": "float32"}, 10, 2048),
    "formant": ("formant", {}, 50, None),
    "phones (recognize)": ("phones", {"mode": "recognize"}, 50, None),
    "phones (align)": ("phones", {"mode": "align"}, 50, None),
}


def make_inputs(folder: Path, minutes: float) -> tuple[Path, Path, Path]:
    """Speech tiled to at least `minutes`, its transcript, and a random base-size HuBERT checkpoint."""
    import torch
    from transformers import HubertConfig, HubertModel

    from thkit.audio.tts import synthesize

    speech = synthesize(SPEECH, 16000)
    repeats = int(np.ceil(minutes * 60 * 16000 / speech.shape[0]))  # whole repeats, so the transcript fits
    np.save(folder / "audio.npy", np.tile(speech, repeats))
    (folder / "audio.txt").write_text(" ".join([SPEECH] * repeats))
    torch.manual_seed(0)
    HubertModel(HubertConfig()).save_pretrained(folder / "hubert-base-random")
    return folder / "audio.npy", folder / "audio.txt", folder / "hubert-base-random"


def child(encoder_type: str, params: dict, audio_path: Path, text_path: Path, threads: int) -> dict:
    """Runs in its own process: build, warm up, time one pass over the whole clip."""
    import torch

    from thkit.core import Audio, GraphContext, Timeline
    from thkit.core.registry import registry

    torch.set_num_threads(threads)
    component_class = registry().get("encoder", encoder_type)
    component = component_class(component_class.Params(**params), {"audio": Audio(16000)}, GraphContext())
    start = time.perf_counter()
    module = component.build().eval()
    build_seconds = time.perf_counter() - start
    audio = torch.from_numpy(np.load(audio_path))
    text = text_path.read_text() if params.get("mode") == "align" else None
    with torch.inference_mode(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module({"audio": audio[:16000]}, Timeline(16000, 16000, text=text and " ".join(text.split()[:2])))
        caught.clear()  # the warm-up's own complaints do not matter
        wall, cpu = time.perf_counter(), cpu_seconds()
        out = module({"audio": audio}, Timeline(audio.shape[0], 16000, text=text))["features"]
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if encoder_type == "phones":  # kept to compare recognition with alignment
        np.save(audio_path.parent / f"phones-{params['mode']}.npy", out.argmax(dim=1).numpy())
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "build_seconds": build_seconds,
        "peak_mb": peak_rss_mb(),
        "shape": list(out.shape),
        "warnings": sorted({str(w.message)[:120] for w in caught}),
    }


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (phones' recognition workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set size. Not ru_maxrss: Linux carries that over from the
    parent through fork and exec, so a child would report its parent's peak when that is higher."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def run_case(name: str, inputs: tuple[Path, Path, Path], threads: int) -> dict:
    encoder_type, params, _, _ = CASES[name]
    params = {key: value.format(weights=inputs[2]) if isinstance(value, str) else value for key, value in params.items()}
    if encoder_type == "phones":
        params["workers"] = threads  # processes for recognition: as many as torch gets threads
    command = [sys.executable, __file__, "--child", json.dumps([encoder_type, params, str(inputs[0]), str(inputs[1]), threads])]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test audio")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and phones' worker processes (the machine has 2 cores)")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these encoders")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        encoder_type, params, audio, text, threads = json.loads(args.child)
        print(json.dumps(child(encoder_type, params, Path(audio), Path(text), threads)))
        return

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        inputs = make_inputs(Path(folder), args.minutes)
        audio_seconds = np.load(inputs[0], mmap_mode="r").shape[0] / 16000
        print(f"{audio_seconds / 60:.2f} min of piper speech, {os.cpu_count()} CPUs, torch threads {args.threads}, load average {load:.1f} at start\n")
        print("| encoder | output | wall s | x real time | target | CPU s | x real time per CPU s | peak RSS MB | target |")
        print("|---|---|---|---|---|---|---|---|---|")
        notes = []
        for name in args.only or CASES:
            result = run_case(name, inputs, args.threads)
            _, _, speed_target, memory_target = CASES[name]
            speed = audio_seconds / result["seconds"]
            speed_mark = "ok" if speed >= speed_target else "MISSED"
            memory = f"< {memory_target} ({'ok' if result['peak_mb'] < memory_target else 'MISSED'})" if memory_target else "-"
            print(
                f"| {name} | {result['shape'][0]} x {result['shape'][1]} | {result['seconds']:.1f} | {speed:.1f} | "
                f">= {speed_target} ({speed_mark}) | {result['cpu_seconds']:.1f} | {audio_seconds / result['cpu_seconds']:.1f} | "
                f"{result['peak_mb']:.0f} | {memory} |",
                flush=True,
            )
            notes += [f"- {name}: {message}" for message in result["warnings"]]
        labels = {mode: Path(folder) / f"phones-{mode}.npy" for mode in ("recognize", "align")}
        if all(path.exists() for path in labels.values()):
            alike = np.mean(np.load(labels["recognize"]) == np.load(labels["align"]))
            print(f"\nphones: {alike:.1%} of recognised rows are labelled as forced alignment of the transcript labels them")
    if notes:
        print("\nwarnings during the timed runs:\n" + "\n".join(notes))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
