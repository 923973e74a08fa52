"""Benchmark: the local lifecycle (`make demo`) end to end, repeated, per step.

    .venv/bin/python -m benchmarks.lifecycle --runs 3

Each run starts a fresh engine (emulator reset, synth, deploy) and goes through upload →
trigger → preprocessing → training → evaluation → gate → registered version. Prints the
median and spread of each step; results and the machine they came from belong in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time

from rich.console import Console
from rich.table import Table

from mlops.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    per_step: dict[str, list[float]] = {}
    walls = []
    for index in range(args.runs):
        started = time.perf_counter()
        result = run_demo(console=Console(file=io.StringIO()))
        walls.append(time.perf_counter() - started)
        for step, seconds in result["timings"].items():
            per_step.setdefault(step, []).append(seconds)
        console.print(f"run {index + 1}/{args.runs}: {walls[-1]:.1f} s")
    table = Table("step", "median s", "min s", "max s", title="local lifecycle")
    for step, values in per_step.items():
        table.add_row(step, f"{statistics.median(values):.2f}", f"{min(values):.2f}",
                      f"{max(values):.2f}")  # fmt: skip
    totals = [sum(v[i] for v in per_step.values()) for i in range(args.runs)]
    table.add_row("[bold]lifecycle total[/]", f"{statistics.median(totals):.2f}",
                  f"{min(totals):.2f}", f"{max(totals):.2f}")  # fmt: skip
    table.add_row("run incl. engine start", f"{statistics.median(walls):.2f}",
                  f"{min(walls):.2f}", f"{max(walls):.2f}")  # fmt: skip
    console.print(table)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
                  f"Python {platform.python_version()}")  # fmt: skip


if __name__ == "__main__":
    main()
