"""Core speed: validating a 200-node spec, and `thkit plugins` wall time (fresh processes).

Run: python benchmarks/bench_core.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from thkit.core.graph import load_graph

N_NODES = 200


def two_hundred_node_spec() -> str:
    """150 mel encoders and 50 concat fusions, each fusing three encoders: 200 nodes, 300 edges."""
    lines = ["thkit: 1", "name: big", "data: {synthetic: {}}", "nodes:"]
    encoders = 150
    for index in range(encoders):
        n_mels = 16 + index % 64
        lines.append(f"  mel{index}: {{kind: encoder, type: mel, params: {{n_mels: {n_mels}}}, inputs: {{audio: $audio}}}}")
    for index in range(N_NODES - encoders):
        a, b, c = (3 * index) % encoders, (3 * index + 1) % encoders, (3 * index + 2) % encoders
        lines.append(f"  fuse{index}: {{kind: fusion, type: concat, inputs: {{a: mel{a}.features, b: mel{b}.features, c: mel{c}.features}}}}")
    return "\n".join(lines) + "\n"


def time_validation(repeats: int = 20) -> float:
    text = two_hundred_node_spec()
    graph = load_graph("big.yaml", text=text)  # warm: registry discovery and class imports happen once
    assert len(graph.nodes) == N_NODES
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_graph("big.yaml", text=text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_plugins_command(repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "thkit", "plugins"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> list[tuple[str, str]]:
    rows = [
        (f"validate a {N_NODES}-node spec (parse + check + ports), median of 20", f"{time_validation() * 1000:.1f} ms"),
        ("`thkit plugins` wall time, fresh process, median of 5", f"{time_plugins_command():.2f} s"),
    ]
    print("| benchmark | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return rows


if __name__ == "__main__":
    main()
