"""Whole training runs of the CamVid recipe: the code at a baseline commit against today's, on
this machine, one run after the other (a benchmark, not a test).

    python benchmarks/training_ab.py [--baseline REV] [--epochs 5] [--repeats 1]

Step tables (``speed.py --part training``) time turns of a few steps in one process, where the
paths weigh on each other and share one memory allocator; what a user waits for is the run.
This checks the baseline out into a temporary ``git worktree``, and runs ``fcnseg train`` with
each side's own ``benchmarks/camvid.yaml`` for ``--epochs`` epochs, baseline first, then today's,
``--repeats`` times in turns (seeds ``--seed``, ``--seed`` + 1, …: the final mean IU
of one seed varies by about a point), each in a fresh process with nothing else running. It writes
``benchmarks/results/training_ab.json``: every epoch's time (training and validation), each
run's total and final validation mean IU, and the ratios of the totals, baseline over today's,
of each repeat. The default baseline is the commit before the training-speed work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from camvid import commit
from speed import machine  # the same machine description as the speed benchmark

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "training_ab.json"
BASELINE = "6b634ba^"  # before the Lovász rewrite, kept images, bf16 and allocator work


def run_side(code: Path, root: Path, out: Path, epochs: int, seed: int) -> dict[str, object]:
    """One training run of the recipe with the fcnseg of ``code``, in a fresh process."""
    command = [
        sys.executable,
        "-m",
        "fcnseg",
        "train",
        "--config",
        str(code / "benchmarks" / "camvid.yaml"),
        "--root",
        str(root),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--overwrite",
    ]
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"training with {code} failed:\n{done.stderr[-2000:]}")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    said = [line for line in done.stdout.splitlines() if line.startswith("training step")]
    return {
        "epoch_seconds": [record["time"] for record in history],
        "total_seconds": round(sum(record["time"] for record in history), 1),
        "seed": seed,
        "final_mean_iu": history[-1]["mean_iu"],
        "choices": said,  # what --amp auto and --compile auto chose, in their words
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare against")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1, help="of the first repeat; +1 each")
    parser.add_argument("--root", type=Path, default=ROOT.parent / "shared/datasets/camvid")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, object]]] = {"baseline": [], "today": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for repeat in range(args.repeats):
                for side, code in (("baseline", old), ("today", ROOT)):
                    out = Path(tmp) / f"{side}{repeat}"
                    seed = args.seed + repeat
                    runs[side].append(run_side(code, args.root, out, args.epochs, seed))
                    last = runs[side][-1]
                    print(
                        f"{side:9s} run {repeat + 1}: {last['total_seconds']:7.1f} s, "
                        f"final val mean IU {100 * last['final_mean_iu']:.2f}",
                        flush=True,
                    )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    ratios = [
        b["total_seconds"] / t["total_seconds"]
        for b, t in zip(runs["baseline"], runs["today"], strict=True)
    ]
    finals = {side: [r["final_mean_iu"] for r in rs] for side, rs in runs.items()}
    gap = 100 * (statistics.mean(finals["today"]) - statistics.mean(finals["baseline"]))
    print(
        f"today {statistics.median(ratios):.2f}x the baseline's images/s "
        f"({', '.join(f'{r:.2f}' for r in ratios)}); final val mean IU {gap:+.2f} points"
    )
    RESULTS.write_text(
        json.dumps(
            {
                "machine": machine(),
                "commit": commit(),
                "baseline": args.baseline,
                "epochs": args.epochs,
                "runs": runs,
                "ratios": ratios,
                "final_mean_iu_gap_points": gap,
                "command": " ".join(sys.argv),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
