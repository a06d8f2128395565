"""The paper's Table 1, computed from the code (a benchmark, not a test).

    python benchmarks/table1.py [--runs 5]

For FCN-AlexNet, FCN-VGG16 and FCN-GoogLeNet (the paper's GoogLeNet, BVLC's; torchvision's
later GoogLeNet beside it), each an FCN-32s scoring PASCAL VOC's 21 classes as in Table 1:

* conv. layers: the learned layers on the longest path from image to scores (the 1×1 scoring
  layer included, as the paper counts the classifier it replaces);
* parameters of the FCN;
* receptive field and maximum stride of the convolutionalized classifier (§3.1): for GoogLeNet
  with the classifier's 7×7 average pooling, which Table 1 counts and §4.1 then discards;
* forward time of a 500×500 image, fp32 eager on this machine's CPU (median of ``--runs``), as
  a ratio to FCN-VGG16 in the same run beside the paper's ratio on its K40 GPU.

Mean IU needs PASCAL VOC 2011 and trained nets; the paper's is shown. Writes
``benchmarks/results/table1.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.fx as fx
from speed import machine
from torch import nn

import fcnseg
from fcnseg.blocks.geometry import receptive_field
from fcnseg.models.backbones.bvlc import CLASSIFIER_POOL

HERE = Path(__file__).resolve().parent
# Table 1 of the paper: mean IU (VOC 2011 val), forward time (ms, 500×500, K40 GPU), conv.
# layers, parameters (millions), receptive field, maximum stride.
PAPER = {
    "alexnet": (39.8, 50, 8, 57, 355, 32),
    "vgg16": (56.0, 210, 16, 134, 404, 32),
    "bvlc_googlenet": (42.5, 59, 22, 6, 907, 32),
}
PAPER_COLUMNS = ("mean_iu", "forward_ms_k40", "conv_layers", "parameters_m", "rf", "stride")
NETS = {"alexnet": "caffe", "vgg16": "caffe", "bvlc_googlenet": "modern", "googlenet": "modern"}


def depth(module: nn.Module) -> int:
    """Learned layers on the longest path through ``module`` (its branches traced by fx)."""
    if isinstance(module, nn.Conv2d):
        return 1
    children = list(module.children())
    if not children:
        return 0
    if isinstance(module, nn.Sequential):
        return sum(depth(child) for child in children)
    graph = fx.symbolic_trace(module).graph
    modules = dict(module.named_modules())
    longest: dict[fx.Node, int] = {}
    for node in graph.nodes:
        before = max((longest.get(a, 0) for a in node.all_input_nodes), default=0)
        own = depth(modules[node.target]) if node.op == "call_module" else 0
        longest[node] = before + own
    return max(longest.values())


def forward_ms(model: nn.Module, runs: int) -> float:
    x = torch.randn(1, 3, 500, 500)
    with torch.inference_mode():
        model(x)  # warm-up
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def row(name: str, geometry: str, runs: int) -> dict[str, object]:
    torch.manual_seed(0)
    model = fcnseg.fcn32s(num_classes=21, backbone=name, geometry=geometry).eval()
    field = model.backbone.field(32)
    if name == "bvlc_googlenet":
        field = receptive_field(CLASSIFIER_POOL, field)
    return {
        "net": name,
        "geometry": geometry,
        "conv_layers": sum(depth(layer) for layer in model.backbone.children()) + 1,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "receptive_field": field.size,
        "max_stride": max(model.backbone.taps),
        "forward_ms_500": round(forward_ms(model, runs), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed forwards per net")
    args = parser.parse_args()
    rows = [row(name, geometry, args.runs) for name, geometry in NETS.items()]
    vgg = next(r for r in rows if r["net"] == "vgg16")["forward_ms_500"]
    print(
        f"{'net':16} {'conv layers':>11} {'params (M)':>10} {'rf size':>8} {'stride':>6} "
        f"{'fwd ms':>8} {'÷ VGG16':>8}   paper: layers, params, rf, ms (÷ VGG16), mean IU"
    )
    for r in rows:
        r["forward_ratio_to_vgg16"] = round(r["forward_ms_500"] / vgg, 3)
        paper = PAPER.get(r["net"])
        said = (
            f"{paper[2]:>3} {paper[3]:>4}M {paper[4]:>4} {paper[1]:>4} ({paper[1] / 210:.2f}) "
            f"{paper[0]}"
            if paper
            else "(not in the paper: torchvision's GoogLeNet)"
        )
        print(
            f"{r['net']:16} {r['conv_layers']:>11} {r['parameters_m']:>10} "
            f"{r['receptive_field']:>8.0f} {r['max_stride']:>6} {r['forward_ms_500']:>8.1f} "
            f"{r['forward_ratio_to_vgg16']:>8.2f}   {said}"
        )
    report = {
        "rows": rows,
        "paper": {k: dict(zip(PAPER_COLUMNS, v, strict=True)) for k, v in PAPER.items()},
        "machine": machine(),
        "runs": args.runs,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "table1.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
