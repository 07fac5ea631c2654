"""Start-up: how long each command takes to answer, against importing TransformerLens.

Every query command, ``--help``, and every command given a bad argument must
answer in under 1 s: their arguments are checked, and the store is read,
before torch or TransformerLens is imported. Each command runs in a fresh
process (the way a user runs it); the figure is the median of ``--repeat`` runs.
The baseline, measured in the same run, is ``import transformer_lens`` alone,
what every command paid before any output when the CLI imported it up front.

    python benchmarks/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.0  # seconds


def seconds(argv: list[str], repeat: int) -> tuple[float, int]:
    """Median wall time of ``argv`` in a fresh process, and its exit code."""
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        code = subprocess.run(argv, capture_output=True, check=False).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    headgraph = [
        shutil.which("headgraph") or sys.exit("install headgraph first (pip install -e .)")
    ]
    with tempfile.TemporaryDirectory() as folder:
        store = str(Path(folder) / "db")
        subprocess.run(
            [*headgraph, "ingest", "--store", store, "--prompts", "64"], check=True,
            capture_output=True,
        )  # fmt: skip
        on = ["--store", store]
        cases = {
            "headgraph --help": ["--help"],
            "ingest, bad seeds": ["ingest", "--seeds", "9.9x"],
            "ingest, bad threshold": ["ingest", "--edge-frac", "2"],
            "ingest, missing prompts file": ["ingest", "--prompts-file", "/no/such/file"],
            "verify, bad edge": ["verify", "--edge", "1.0=>2.0", *on],
            "verify, unknown run": ["verify", "--run", "nope", *on],
            "verify, no store": ["verify", "--store", str(Path(folder) / "none")],
            "runs": ["runs", *on],
            "paths --to 1.0": ["paths", "--to", "1.0", *on],
            "redundancy --to 1.0": ["redundancy", "--to", "1.0", *on],
            "features --head 1.0 (tokens)": ["features", "--head", "1.0", *on],
            "features --sv 1.0:0": ["features", "--sv", "1.0:0", *on],
            "cypher": ["cypher", "MATCH (r:Run) RETURN r.key", *on],
            "compare": ["compare", *on],
        }
        baseline, _ = seconds([sys.executable, "-c", "import transformer_lens"], args.repeat)
        interpreter, _ = seconds([sys.executable, "-c", "pass"], args.repeat)
        print(
            f"baseline: import transformer_lens {baseline:.2f} s; python itself {interpreter:.2f} s"
        )
        print(f"{'command':32} {'exit':>4} {'seconds':>8} {'/ baseline':>10}  target < {TARGET} s")
        slow = []
        for name, argv in cases.items():
            took, code = seconds([*headgraph, *argv], args.repeat)
            ok = took < TARGET
            slow += [] if ok else [name]
            verdict = "ok" if ok else "SLOW"
            print(f"{name:32} {code:>4} {took:>8.2f} {took / baseline:>10.3f}  {verdict}")
    print("all under the target" if not slow else f"over the target: {', '.join(slow)}")


if __name__ == "__main__":
    main()
