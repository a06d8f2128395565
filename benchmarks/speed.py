"""Inference and training speed of fcnseg on this machine: one run, tables, ``results/speed.json``.

Not a test: it takes minutes. ``python benchmarks/speed.py [--part inference|training]``
measures

(a) the paper's Table 1 setting, FCN-8s VGG16 in the reference (caffe) geometry, one 500×500
    image; (b) FCN-8s EfficientNet-Lite0, modern geometry, 360×480, batch 1 and 8;

each as eager fp32 (the baseline: ``model(x).argmax(1)``) and through every fast path of
:class:`fcnseg.Predictor`, with images/s, the ratio to the baseline, the argmax agreement with
the baseline on real CamVid frames, and the share of the machine's peak (matmul GFLOP/s
measured in the same run, model FLOPs counted by ``FlopCounterMode``); torchvision's
``fcn_resnet50`` and ``lraspp_mobilenet_v3_large`` as peers; and the peak resident memory of a
4096×4096 image, whole and tiled, each in a fresh subprocess.

Training: images/s of the CamVid recipe's optimiser step (``benchmarks/camvid.yaml``: FCN-4s
Lite1, 8 crops of 288×384, CE + Lovász) as it was (eager, segmentation_models_pytorch's
Lovász) against today's (the Lovász's radix sort; the step compiled), each path its own
copy of the model, taking turns on the same augmented batches; the ratios are per round. Then
whole steps with their data loader, the loader as before (files decoded every epoch, two
worker processes) against decoded images kept in memory, with and without workers.

Weights: zero or random score layers give degenerate, near-tied argmaxes that make agreement
meaningless. FCN-8s Lite0 is the model ``benchmarks/camvid.py`` trained (``runs/camvid``), when it
is there (``--lite-weights``). Otherwise, and for VGG16, the score layers (and learned 2×
upsamplings) are *trained*, backbone frozen, by cross-entropy on 4 CamVid training frames, then
scaled so that the median margin between the top two classes is 5 (random VGG features fit with
huge margins, which would flatter low precisions); the backbones are EfficientNet-Lite0's
ImageNet weights (they ship offline) and a randomly initialised VGG16 (torchvision's
initialisation; VGG weights cannot be downloaded here). Agreement is measured on CamVid
validation frames, never on the frames used for fitting or calibration.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

import fcnseg
from fcnseg.files import read_metadata
from fcnseg.files.onnx import export_onnx
from fcnseg.inference import CoarseScores, Predictor, Upsampling, cpu_has_bf16
from fcnseg.models import output_field, pad_to_stride

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
RESULTS = ROOT / "benchmarks" / "results" / "speed.json"
TRAINING_RESULTS = RESULTS.with_name("speed_training.json")
NUM_CLASSES = 11  # CamVid's classes (void excluded)
BUDGET_S = 30.0  # timed rounds stop once this much time is spent (after at least two)
ROUNDS = 5
TILES = (2048, 1536)  # the tiles of the memory measurement (2048: tile="auto" for Lite0)
SIZE = 4096  # the side of the memory measurement's image
TRAINED = ROOT / "runs" / "camvid" / "best.safetensors"  # benchmarks/camvid.py's model
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16"}
MARGIN = 5.0  # median top-2 logit margin of the fitted score layers


# ---------------------------------------------------------------- machine


def machine() -> dict:
    flags: set[str] = set()
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = [
        "avx2",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ]
    import onnxruntime

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "flags": [f for f in wanted if f in flags],
        "bf16_native": cpu_has_bf16(),
        "torch": torch.__version__,
        "onednn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def peak_gflops(dtype: torch.dtype, n: int = 2048) -> float:
    """Dense matmul GFLOP/s: what the machine reaches at best in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    seconds = measure(lambda: a @ b, budget=5.0, runs=20)
    return 2 * n**3 / seconds / 1e9


def measure(fn: Callable[[], object], *, budget: float = 3.0, runs: int = 10) -> float:
    """Best seconds of ``fn`` after one warm-up run: ``runs`` runs or ``budget`` seconds."""
    return min(race({"": fn}, budget=budget, rounds=runs)[""])


def race(
    fns: dict[str, Callable[[], object]], *, budget: float = BUDGET_S, rounds: int = ROUNDS
) -> dict[str, list[float]]:
    """Seconds per run of each function, after one warm-up run each, taken in turns (round
    robin) so that load from other processes falls on all alike: ``rounds`` rounds, or fewer
    (at least two) once ``budget`` seconds are spent."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    for done in range(rounds):
        if done >= 2 and time.perf_counter() - start > budget:
            break
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    return times


# ---------------------------------------------------------------- data and weights


def frames(split: str, count: int, size: tuple[int, int] | None = None):
    """``count`` CamVid frames (uint8 N×3×H×W) and labels, resized to ``size`` if given;
    smooth synthetic images if the dataset is not there."""
    folder = CAMVID / split
    if not folder.is_dir():
        g = torch.Generator().manual_seed(0)
        h, w = size or (360, 480)
        noise = torch.rand(count, 3, h // 16, w // 16, generator=g)
        images = torch.nn.functional.interpolate(noise, size=(h, w), mode="bilinear")
        return (images * 255).to(torch.uint8), None, "synthetic (CamVid not found)"
    names = sorted(folder.iterdir())[:count]
    images, labels = [], []
    for p in names:
        image = Image.open(p).convert("RGB")
        label = Image.open(CAMVID / f"{split}annot" / p.name)
        if size is not None:
            image = image.resize(size[::-1], Image.BILINEAR)
            label = label.resize(size[::-1], Image.NEAREST)
        images.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
        labels.append(torch.from_numpy(np.array(label)).long())
    return torch.stack(images), torch.stack(labels), f"CamVid {split} ({len(names)} frames)"


class _Cached(torch.nn.Module):
    """Stands in for the backbone: returns features computed once."""

    def __init__(self, feats: dict[int, torch.Tensor], min_size: int) -> None:
        super().__init__()
        self.feats, self.min_size = feats, min_size

    def forward(
        self, x: torch.Tensor, strides: tuple[int, ...] | None = None
    ) -> dict[int, torch.Tensor]:
        return self.feats


def fit_scores(
    model: fcnseg.FCN, images: torch.Tensor, labels: torch.Tensor | None, steps: int = 60
) -> None:
    """Give the score layers trained-looking weights: train them (and the learned 2×
    upsamplings), with the backbone frozen, by cross-entropy on a few labelled frames, the
    way FCN training starts (§4.3). Without labels, random scores of a sensible scale."""
    g = torch.Generator().manual_seed(0)
    head = [p for n, p in model.named_parameters() if n.startswith(("score", "upscore"))]
    if labels is None:
        with torch.no_grad():
            for p in head:
                p.add_(torch.randn(p.shape, generator=g) * 0.01)
        return
    x = model.normalization(images)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
        padded = pad_to_stride(x, model.pad_to)
        feats = {s: f.float() for s, f in model.backbone(padded).items()}
    # The loss is taken on every 4th row and column: the final upsampling as two matrices
    # (fcnseg.inference.Upsampling) gives those pixels' scores without the full map.
    up = Upsampling.of(model)
    rows, cols = torch.arange(0, x.shape[-2], 4), torch.arange(0, x.shape[-1], 4)
    target = labels[:, rows][:, :, cols]
    saved = model.backbone, getattr(model, model.final), model.score
    model.backbone = _Cached(feats, model.backbone.min_size)
    setattr(model, model.final, torch.nn.Identity())
    model.score = CoarseScores()
    optimizer = torch.optim.Adam(head, lr=2e-2)
    try:
        for _ in range(steps):
            coarse = model(x)
            a = up.matrix(coarse.shape[-2], 0, x.shape[-2], coarse.device)[rows]
            b = up.matrix(coarse.shape[-1], 0, x.shape[-1], coarse.device)[cols]
            scores = a @ coarse @ b.T
            loss = torch.nn.functional.cross_entropy(scores, target, ignore_index=NUM_CLASSES)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        # Random features fit with huge margins, which would flatter any low precision; the
        # scores are scaled (the argmax unchanged) so that the median margin between the top
        # two classes is MARGIN, that of a trained net's confident but not saturated logits.
        top2 = scores.detach().topk(2, dim=1).values
        factor = MARGIN / (top2[:, 0] - top2[:, 1]).median()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith("score"):
                    p.mul_(factor)
    finally:
        model.backbone, model.score = saved[0], saved[2]
        setattr(model, model.final, saved[1])
    model.requires_grad_(False)


def vgg_model() -> fcnseg.FCN:
    torch.manual_seed(0)
    return fcnseg.fcn8s(num_classes=NUM_CLASSES, backbone="vgg16", geometry="caffe").eval()


def lite_model() -> fcnseg.FCN:
    torch.manual_seed(0)
    return fcnseg.fcn8s(
        num_classes=NUM_CLASSES, backbone="efficientnet_lite0", pretrained_backbone=True
    ).eval()


# ---------------------------------------------------------------- paths


def eager(model: fcnseg.FCN) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a user writes without fcnseg's predictor: fp32, NCHW, no_grad."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(model.normalization(x)).argmax(1)

    return run


def fast_paths(
    model: fcnseg.FCN, calibration: torch.Tensor, onnx_file: Path
) -> dict[str, Callable]:
    """Every path, by name, each a callable on a uint8 batch. The default (``backend="auto"``)
    calibrates on the first batch it segments, as it does for a user; int8's activation ranges
    come from ``calibration``, training frames (never the frames measured)."""
    paths: dict[str, Callable] = {"fcnseg default (auto)": Predictor(model)}
    paths["fcnseg fp32 (channels_last, folded BN, separable upsampling)"] = Predictor(
        model, backend="torch", precision="fp32"
    )
    if cpu_has_bf16():
        paths["fcnseg bf16"] = Predictor(model, backend="torch", precision="bf16")
        paths["fcnseg bf16 + torch.compile"] = Predictor(
            model, backend="torch", precision="bf16", compile=True
        )
        paths["fcnseg fp16"] = Predictor(model, backend="torch", precision="fp16")
    paths["onnxruntime fp32"] = Predictor(onnx_file, backend="onnxruntime", precision="fp32")
    int8 = Predictor(onnx_file, backend="onnxruntime", precision="int8")
    int8.calibrate(calibration)
    paths["onnxruntime int8 (static QDQ)"] = int8
    if importlib.util.find_spec("openvino") is not None:
        paths["openvino fp32"] = Predictor(onnx_file, backend="openvino", precision="fp32")
        if cpu_has_bf16():
            paths["openvino bf16"] = Predictor(onnx_file, backend="openvino", precision="bf16")
        ov_int8 = Predictor(onnx_file, backend="openvino", precision="int8")
        ov_int8.calibrate(calibration)
        paths["openvino int8 (the same QDQ graph)"] = ov_int8
    return paths


def flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def bench_setting(
    name: str,
    model: fcnseg.FCN,
    images: torch.Tensor,
    batches: list[int],
    peaks: dict[str, float],
    source: str,
    train: torch.Tensor,
    exports: dict,
    workdir: Path,
) -> list[dict]:
    """Rows of the table for one model: every path, every batch size."""
    print(f"\n== {name}", flush=True)
    gflop = flops(model, model.normalization(images[:1])) / 1e9
    base = eager(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setup = time.perf_counter()
        onnx_file = workdir / f"{name[:3].strip('()')}.onnx"
        exports[name] = export_onnx(model, onnx_file)
        paths = {"eager fp32 (baseline)": base, **fast_paths(model, train, onnx_file)}
        print(f"   set-up of the paths {time.perf_counter() - setup:.0f}s", flush=True)
    rows = []
    for batch in batches:
        x = images[:batch]
        reference = base(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fn in paths.values():
                if isinstance(fn, Predictor):
                    fn.batch_size = batch
            agreement = {
                k: (fn(x).long() == reference).float().mean().item() for k, fn in paths.items()
            }
            times = race({k: (lambda fn=fn, x=x: fn(x)) for k, fn in paths.items()})
        best = {k: batch / min(t) for k, t in times.items()}
        baseline = best["eager fp32 (baseline)"]
        for label, fn in paths.items():
            dtype = "bf16" if "bf16" in label else "fp32" if "fp32" in label else None
            shown = label
            if isinstance(fn, Predictor) and "auto" in label:
                dtype = fn.precision if fn.precision in peaks else None
                shown = f"{label} → {fn.engine} {fn.precision}"
            ips = best[label]
            row = {
                "setting": name,
                "batch": batch,
                "path": shown,
                "images_per_s": ips,
                "images_per_s_median": batch / statistics.median(times[label]),
                "runs": len(times[label]),
                "ratio": ips / baseline,
                "agreement": agreement[label],
                "gflop_per_image": gflop,
                "_dtype": dtype,
                "input": source,
            }
            rows.append(row)
            print(
                f"   b{batch} {shown:60s} {ips:7.2f} img/s (median "
                f"{row['images_per_s_median']:6.2f}) ×{row['ratio']:5.2f} "
                f"agree {row['agreement']:.4f}",
                flush=True,
            )
    return rows


def bench_peers(images: torch.Tensor, batches: list[int], peaks: dict[str, float]) -> list[dict]:
    """torchvision's segmentation nets, random weights, eager fp32 and bf16 channels_last."""
    rows = []
    for name in ("fcn_resnet50", "lraspp_mobilenet_v3_large"):
        net = torchvision.models.get_model(
            name, weights=None, weights_backbone=None, num_classes=NUM_CLASSES
        ).eval()
        fast = torchvision.models.get_model(
            name, weights=None, weights_backbone=None, num_classes=NUM_CLASSES
        ).eval()
        fast.load_state_dict(net.state_dict())
        fast = fast.to(memory_format=torch.channels_last)
        x0 = images[:1].float() / 255
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            net(x0)
        gflop = counter.get_total_flops() / 1e9

        def plain(x, net=net):
            with torch.no_grad():
                return net(x.float() / 255)["out"].argmax(1)

        def bf16(x, fast=fast):
            x = x.contiguous(memory_format=torch.channels_last).float() / 255
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return fast(x)["out"].argmax(1)

        variants = {"eager fp32": (plain, "fp32")}
        if cpu_has_bf16():
            variants["channels_last + bf16 autocast"] = (bf16, "bf16")
        for batch in batches:
            x = images[:batch]
            times = race({k: (lambda fn=fn, x=x: fn(x)) for k, (fn, _) in variants.items()})
            base = batch / min(times["eager fp32"])
            for label, (_, dtype) in variants.items():
                ips = batch / min(times[label])
                rows.append(
                    {
                        "setting": f"peer: torchvision {name} 360×480",
                        "batch": batch,
                        "path": label,
                        "images_per_s": ips,
                        "images_per_s_median": batch / statistics.median(times[label]),
                        "runs": len(times[label]),
                        "ratio": ips / base,
                        "agreement": None,
                        "gflop_per_image": gflop,
                        "_dtype": dtype,
                        "input": "random",
                    }
                )
                print(f"   {name} b{batch} {label:32s} {ips:7.2f} img/s", flush=True)
    return rows


# ---------------------------------------------------------------- memory


def peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM``, not ``ru_maxrss``: after fork and exec
    the latter still counts the parent's memory copied at the fork."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(tile: str, model_path: str, out: str) -> None:
    """Run in a subprocess: segment a SIZE×SIZE image whole (``tile`` 0) or in tiles, print
    the peak RSS, and the resident memory before the first pass (Python, torch, the model and
    the image: what any run pays)."""
    model = fcnseg.load(model_path).eval()
    # Random 64×64-pixel blocks of colour, made in uint8 (its content matters less than its
    # size; a float intermediate would weigh 200 MB and count in the peak).
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, SIZE // 64, SIZE // 64), dtype=torch.uint8, generator=g)
    image = blocks.repeat_interleave(64, 1).repeat_interleave(64, 2)
    predictor = Predictor(model, tile=int(tile) or None)
    mask = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(SIZE, SIZE))
    baseline = peak_rss_mib()
    start = time.perf_counter()
    predictor(image, out=mask)
    mask.flush()
    print(
        json.dumps(
            {
                "peak_rss_mib": peak_rss_mib(),
                "baseline_rss_mib": baseline,
                "seconds": time.perf_counter() - start,
                "precision": predictor.precision,
                "overlap": predictor.overlap,
            }
        )
    )


def bench_memory(model: fcnseg.FCN) -> list[dict]:
    """Peak resident memory of a SIZE×SIZE image whole and in each of TILES, each in a fresh
    process, and the agreement of each tiled mask with the whole one."""
    rows, masks = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        model_path = str(Path(tmp) / "model.safetensors")
        fcnseg.save(model, model_path)
        for tile in (0, *TILES):
            out = str(Path(tmp) / f"{tile}.npy")
            done = subprocess.run(
                [sys.executable, __file__, "--memory", str(tile), model_path, out],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            masks[tile] = np.load(out)
            rows.append(
                {
                    "setting": f"{SIZE}×{SIZE}, FCN-8s Lite0",
                    "mode": f"tiled {tile}" if tile else "whole",
                    "tile": tile or None,
                    **result,
                    "tiled_vs_whole_agreement": float((masks[tile] == masks[0]).mean()),
                }
            )
            print(
                f"   {rows[-1]['mode']:10s} peak RSS {result['peak_rss_mib']:7.0f} MiB "
                f"(before the pass {result['baseline_rss_mib']:.0f}) "
                f"{result['seconds']:6.1f}s",
                flush=True,
            )
    return rows


# ---------------------------------------------------------------- main


def bench_training(rounds: int = 10, batches: int = 3) -> dict:
    """Seconds per optimiser step of the CamVid recipe, as it was and as it is, in turns."""
    from fcnseg.training import TrainConfig
    from fcnseg.training.distributed import Processes
    from fcnseg.training.setup import build_run
    from fcnseg.training.step import backward, update

    values = TrainConfig.read_yaml(ROOT / "benchmarks" / "camvid.yaml")
    config = TrainConfig.from_dict(
        {**values, "root": str(CAMVID), "out": "-", "keep_decoded": "off"}
    ).resolved()
    procs = Processes("cpu")
    paths = {k: v for k, v in TRAINING_PATHS.items() if v[1] == "off" or cpu_has_bf16()}
    runs = {name: build_run(config, procs, lambda _: None) for name in paths}
    for name, (loss, amp, compiled) in paths.items():
        if loss == "smp":
            smp_lovasz(runs[name])
        runs[name].amp = amp
        if compiled:
            runs[name].net = torch.compile(runs[name].net, dynamic=False)
    data = list(itertools.islice(next(iter(runs.values())).loader, batches))
    images = len(data[0][0])

    taken = dict.fromkeys(runs, 0)  # steps each path has taken: they cycle through the batches

    def step(name: str) -> None:
        run, k = runs[name], taken[name]
        taken[name] += 1
        generator = torch.Generator().manual_seed(k)
        x, y = data[k % len(data)]
        backward(run, config, procs, x, y, generator=generator, scale=1.0, sync=True)
        update(run)

    compile_s = {}
    for name in (n for n, v in paths.items() if v[2]):
        start = time.perf_counter()
        step(name)
        compile_s[name] = time.perf_counter() - start
    times = race(
        {name: (lambda name=name: step(name)) for name in runs}, budget=float("inf"), rounds=rounds
    )
    rows = ratio_rows(times, images)
    return {
        "setting": f"CamVid recipe step: {config.model} {config.backbone}, batch {images} of "
        f"{config.crop[0]}×{config.crop[1]}, {config.loss}",
        "compile_seconds": compile_s,
        "rows": rows,
    }


#: The step's paths: (Lovász: smp's or ours, --amp, compiled); bf16 only where it is native.
TRAINING_PATHS = {
    "as before: eager, smp's Lovász": ("smp", "off", False),
    "our Lovász, eager": ("ours", "off", False),
    "our Lovász, compiled step": ("ours", "off", True),
    "our Lovász, bf16 autocast, eager": ("ours", "bf16", False),
    "our Lovász, bf16 autocast, compiled step": ("ours", "bf16", True),
}


def smp_lovasz(run) -> None:
    """Give ``run`` the loss as it was: CE + segmentation_models_pytorch's Lovász."""
    from segmentation_models_pytorch.losses import LovaszLoss

    from fcnseg.training.loss import SegmentationLoss, SumLoss

    ignore = run.train_set.ignore_index
    run.loss = SumLoss(
        [(1.0, SegmentationLoss(ignore_index=ignore)), (1.0, LovaszLoss("multiclass", ignore))],
        ignore_index=ignore,
    )


#: Whole training steps: (step: before, compiled fp32 or eager bf16; --keep-decoded; --workers).
#: The bf16 row only where bf16 is native.
LOADERS = {
    "as before: smp's Lovász, eager; files decoded every epoch, 2 workers": ("before", "off", 2),
    "our step compiled; files decoded every epoch, 2 workers": ("compiled", "off", 2),
    "our step compiled; decoded once and kept, 2 workers": ("compiled", "on", 2),
    "our step compiled; decoded once and kept, no workers": ("compiled", "on", 0),
    "our step in bf16, eager; decoded once and kept, no workers": ("bf16", "on", 0),
}


def bench_loader(rounds: int = 3, steps: int = 12) -> dict:
    """Images/s of whole training steps of the CamVid recipe (the loader's batches, forward,
    backward, update), the step and the loader as before and as today (:data:`LOADERS`), in
    turns.

    Each turn starts a fresh loader (its workers forked then, as at an epoch's start) and
    takes ``steps`` steps; stopping a loader ends its workers, so none works in another's turn.
    """
    from torch.utils.data import DataLoader

    from fcnseg.training import TrainConfig
    from fcnseg.training.distributed import Processes
    from fcnseg.training.setup import build_run
    from fcnseg.training.step import backward, update

    values = TrainConfig.read_yaml(ROOT / "benchmarks" / "camvid.yaml")
    procs = Processes("cpu")
    runs, configs = {}, {}
    for name, (step, keep, workers) in LOADERS.items():
        if step == "bf16" and not cpu_has_bf16():
            continue
        config = TrainConfig.from_dict(
            {**values, "root": str(CAMVID), "out": "-", "keep_decoded": keep, "workers": workers}
        ).resolved()
        configs[name], runs[name] = config, build_run(config, procs, print)
        if step == "before":
            smp_lovasz(runs[name])
        elif step == "compiled":
            runs[name].net = torch.compile(runs[name].net, dynamic=False)
        else:
            runs[name].amp = "bf16"

    def turn(name: str) -> None:
        run, config = runs[name], configs[name]
        loader = DataLoader(
            run.loader.dataset,
            batch_size=run.loader.batch_size,
            sampler=run.loader.sampler,
            num_workers=config.workers,
            collate_fn=run.loader.collate_fn,
        )
        for k, (x, y) in enumerate(itertools.islice(loader, steps)):
            generator = torch.Generator().manual_seed(k)
            backward(run, config, procs, x, y, generator=generator, scale=1.0, sync=True)
            update(run)

    times = race(
        {name: (lambda name=name: turn(name)) for name in runs}, budget=float("inf"), rounds=rounds
    )
    rows = ratio_rows(times, steps * configs[next(iter(runs))].batch_size)
    return {"setting": f"whole steps from the loader, {steps} per turn", "rows": rows}


def ratio_rows(times: dict[str, list[float]], images: int) -> list[dict]:
    """Each path's median images/s and its per-round ratios to the first path (the baseline,
    timed in the same rounds), printed as they are made."""
    base = next(iter(times.values()))
    width = max(map(len, times))
    rows = []
    for name, seconds in times.items():
        ratios = sorted(b / t for b, t in zip(base, seconds, strict=True))
        rows.append(
            {
                "path": name,
                "images_per_s_median": images / statistics.median(seconds),
                "ratio_median": statistics.median(ratios),
                "ratio_min": ratios[0],
                "ratio_max": ratios[-1],
                "rounds": len(ratios),
            }
        )
        print(
            f"   {name:{width}s} {rows[-1]['images_per_s_median']:5.2f} img/s  "
            f"×{rows[-1]['ratio_median']:.2f} [{ratios[0]:.2f}–{ratios[-1]:.2f}]",
            flush=True,
        )
    return rows


def table(rows: list[dict]) -> str:
    """img/s is the best run (the least disturbed by other processes), median beside it."""
    lines = [
        f"{'setting':40s} {'b':>2s} {'path':52s} {'img/s':>7s} {'median':>7s} "
        f"{'×eager':>6s} {'agree':>7s} {'%peak':>6s}"
    ]
    for r in rows:
        agree = f"{r['agreement']:.2%}" if r["agreement"] is not None else "-"
        share = f"{r['share_of_peak']:.0%}" if r["share_of_peak"] is not None else "-"
        lines.append(
            f"{r['setting'][:40]:40s} {r['batch']:2d} {r['path'][:52]:52s} "
            f"{r['images_per_s']:7.2f} {r['images_per_s_median']:7.2f} "
            f"{r['ratio']:6.2f} {agree:>7s} {share:>6s}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument(
        "--lite-weights",
        type=Path,
        default=TRAINED,
        metavar="CKPT",
        help="FCN-8s Lite0 to time (default: benchmarks/camvid.py's model if it is there and "
        "an FCN-8s Lite0, else score layers fitted on the spot)",
    )
    parser.add_argument(
        "--part",
        choices=["all", "inference", "training"],
        default="all",
        help="what to measure (default: both); training writes results/speed_training.json",
    )
    args = parser.parse_args()
    if args.memory:
        memory_child(*args.memory)
        return
    info = machine()
    print(json.dumps(info))
    if args.part != "inference":
        started = time.perf_counter()
        print("\n== training", flush=True)
        training = {"machine": info, **bench_training(), "loader": bench_loader()}
        training["total_seconds"] = time.perf_counter() - started
        TRAINING_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        TRAINING_RESULTS.write_text(json.dumps(training, indent=1))
        print(f"wrote {TRAINING_RESULTS}")
    if args.part != "training":
        inference(args, info)


def inference(args: argparse.Namespace, info: dict) -> None:
    """The inference tables, written to results/speed.json."""
    started = time.perf_counter()
    peaks = {"fp32": peak_gflops(torch.float32)}
    if cpu_has_bf16():
        peaks["bf16"] = peak_gflops(torch.bfloat16)
    print(f"peak matmul GFLOP/s: {peaks}", flush=True)

    train, labels, _ = frames("train", 4)
    meta = read_metadata(args.lite_weights) if args.lite_weights.is_file() else None
    trained = meta is not None and (meta.variant, meta.backbone) == ("fcn8s", "efficientnet_lite0")
    if trained:
        lite = fcnseg.load(args.lite_weights).eval()
        lite_weights = f"trained on CamVid ({args.lite_weights})"
    else:
        lite = lite_model()
        fit_scores(lite, train, labels)
        lite_weights = (
            f"ImageNet backbone; score layers trained (backbone frozen) on 4 CamVid "
            f"train frames, scaled to a median top-2 margin of {MARGIN}"
        )
    val, _, source = frames("val", 8)
    exports: dict[str, list] = {}
    workdir = Path(tempfile.mkdtemp(prefix="fcnseg-speed-"))
    rows = bench_setting(
        "(b) FCN-8s Lite0 modern 360×480", lite, val, [1, 8], peaks, source, train, exports, workdir
    )

    vgg = vgg_model()
    fit_scores(vgg, train, labels)
    val500, _, source500 = frames("val", 1, size=(500, 500))
    rows = (
        bench_setting(
            "(a) FCN-8s VGG16 caffe 500×500",
            vgg,
            val500,
            [1],
            peaks,
            source500,
            train,
            exports,
            workdir,
        )
        + rows
    )
    del vgg
    shutil.rmtree(workdir)
    print("\n== peers", flush=True)
    peers = bench_peers(val, [1, 8], peaks)
    print("\n== memory", flush=True)
    memory = bench_memory(lite)

    # The peak is the best of two measurements, at the start and at the end: other processes
    # on the machine lower it when they run.
    for dtype in peaks:
        peaks[dtype] = max(peaks[dtype], peak_gflops(getattr(torch, DTYPE_NAMES[dtype])))
    for r in rows + peers:
        dtype = r.pop("_dtype")
        r["share_of_peak"] = (
            r["gflop_per_image"] * r["images_per_s"] / peaks[dtype] if dtype in peaks else None
        )
    print(f"peak matmul GFLOP/s (best of start and end): {peaks}")
    print("\n" + table(rows + peers))
    for m in memory:
        print(
            f"{m['setting']} {m['mode']:10s}: peak RSS {m['peak_rss_mib']:.0f} MiB "
            f"(before the pass {m['baseline_rss_mib']:.0f}), {m['seconds']:.1f}s, "
            f"same as whole on {m['tiled_vs_whole_agreement']:.4%}"
        )
    result = {
        "machine": info,
        "peak_gflops": peaks,
        "rows": rows,
        "peers": peers,
        "onnx_export_checks": exports,
        "memory": memory,
        "field_lite0": output_field(lite),
        "weights": {
            "lite0": lite_weights,
            "vgg16": "backbone random (torchvision init); score layers trained "
            "(backbone frozen) on 4 CamVid train frames, scaled to a "
            f"median top-2 margin of {MARGIN}",
        },
        "load_average_at_end": os.getloadavg(),
        "total_seconds": time.perf_counter() - started,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {RESULTS} ({result['total_seconds']:.0f}s)")


if __name__ == "__main__":
    main()
