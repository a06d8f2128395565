"""Memory of a training step with and without activation checkpointing (a benchmark).

    python benchmarks/memory.py

Each setting runs in a fresh process (peak resident memory, ``ru_maxrss``, is per process):
one warm-up and three timed steps of FCN-2s on EfficientNet-Lite0 over a whole CHASE_DB1-sized
image (999×960, batch 2) and over CamVid-sized crops (360×480, batch 8). Writes
``benchmarks/results/memory.json``; times are ratios within this run.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from speed import machine

HERE = Path(__file__).resolve().parent
CASES = {"chase 999×960 ×2": (2, 960, 999), "camvid 360×480 ×8": (8, 360, 480)}


def step(batch: int, height: int, width: int, checkpointing: bool) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    import fcnseg

    torch.manual_seed(0)
    model = fcnseg.fcn2s(num_classes=2, backbone="efficientnet_lite0").train()
    model.backbone.checkpointing = checkpointing
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    x, y = torch.randn(batch, 3, height, width), torch.randint(0, 2, (batch, height, width))
    times = []
    for i in range(4):
        start = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB
    return {"peak_rss_mib": round(peak), "seconds_per_step": round(sum(times) / len(times), 3)}


def main() -> None:
    if len(sys.argv) == 5:  # the child: one setting
        batch, height, width, flag = map(int, sys.argv[1:])
        print(json.dumps(step(batch, height, width, bool(flag))))
        return
    rows = []
    for name, (batch, height, width) in CASES.items():
        for flag in (0, 1):
            out = subprocess.run(
                [sys.executable, __file__, str(batch), str(height), str(width), str(flag)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append({"case": name, "checkpointing": bool(flag), **json.loads(out.stdout)})
    for name in CASES:
        plain, saved = (r for r in rows if r["case"] == name)
        saved["memory_ratio"] = round(saved["peak_rss_mib"] / plain["peak_rss_mib"], 3)
        saved["time_ratio"] = round(saved["seconds_per_step"] / plain["seconds_per_step"], 3)
    (HERE / "results").mkdir(exist_ok=True)
    report = {"rows": rows, "machine": machine(), "command": " ".join(sys.argv)}
    (HERE / "results" / "memory.json").write_text(json.dumps(report, indent=2))
    header = ("case", "checkpointing", "peak MiB", "s/step", "mem ×", "time ×")
    print(f"{header[0]:20} " + " ".join(f"{h:>13}" for h in header[1:]))
    for r in rows:
        values = (
            str(r["checkpointing"]),
            str(r["peak_rss_mib"]),
            f"{r['seconds_per_step']:.2f}",
            f"{r.get('memory_ratio', 1):.2f}",
            f"{r.get('time_ratio', 1):.2f}",
        )
        print(f"{r['case']:20} " + " ".join(f"{v:>13}" for v in values))


if __name__ == "__main__":
    main()
