"""Training FCNs end to end, whole image at a time or in crops (paper §3.4, §4.3).

One :class:`~fcnseg.config.TrainConfig` describes a run. Each epoch trains on the training split,
scores the validation split with the four metrics of §5 at full resolution, keeps the model with
the best mean IU (``best.safetensors``) and a resumable checkpoint (``last.safetensors``, see
:mod:`fcnseg.resume`), and logs ``metrics.jsonl`` and ``curves.png``.

Exact resumption. Every source of randomness is either restored or a pure function of the
position in training: the sampler's order is drawn from (seed, epoch); each sample's
augmentation from (seed, epoch, index), whichever worker process loads it; the loss sampling
(§3.4) from (seed, rank, step). The global generators (dropout) are saved per process. A run
stopped after step *s* and resumed gives the weights of the uninterrupted run, bit for bit
in ``deterministic`` mode.

Data parallel. Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its shard of the
data with DistributedDataParallel (NCCL on GPUs, gloo on CPUs); validation shards are disjoint
and their confusion matrices are all-reduced, so N processes report exactly the metrics of one.
Only rank 0 logs and writes.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from .backbones import Normalization
from .checkpoint import atomic_write, save
from .config import TrainConfig
from .data import build_dataset, collate_pad, median_frequency_weights, train_transform
from .data.datasets import drop_samples, find_bad_samples
from .errors import CheckpointError, FcnsegError
from .evaluate import METRICS, autocast, confusion, resolve_device
from .models import FCN, build_fcn
from .optim import SegmentationLoss, build_optimizer, lr_factor
from .resume import read_state, read_weights, rng_state, set_rng_state, write_state

__all__ = ["init_from", "train"]

PLOT_EVERY = 20.0  # seconds


# ---------------------------------------------------------------- processes


class Processes:
    """This process's place among the data-parallel ones (one process without torchrun)."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", local if self.world > 1 else
                                       self.device.index or 0)
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, tensor: Tensor) -> Tensor:
        """All-reduce by sum (in place; on the device the backend wants)."""
        if self.world > 1:
            moved = tensor.to(self.device)
            dist.all_reduce(moved)
            tensor.copy_(moved)
        return tensor

    def gather(self, states: dict[str, Tensor]) -> dict[int, dict[str, Tensor]]:
        """Every process's tensors, by rank (shapes agree across ranks)."""
        if self.world == 1:
            return {0: states}
        out: dict[int, dict[str, Tensor]] = {r: {} for r in range(self.world)}
        for key, value in states.items():
            parts = [torch.empty_like(value, device=self.device) for _ in range(self.world)]
            dist.all_gather(parts, value.to(self.device))
            for r, part in enumerate(parts):
                out[r][key] = part.cpu()
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _mix(*numbers: int) -> int:
    """A 63-bit seed from integers, well spread (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(2, np.uint64)[0] >> 1)


class EpochSampler(DistributedSampler):
    """DistributedSampler that yields ``(epoch, index)`` and can skip the samples already seen.

    The epoch travels with the index so that :class:`SeededItems` can draw each sample's
    augmentation from (seed, epoch, index), which is the same whichever worker loads it.
    """

    def __init__(self, dataset: Dataset, *, world: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = itertools.islice(super().__iter__(), self.skip, None)
        return ((self.epoch, index) for index in order)

    def __len__(self) -> int:
        return self.num_samples - self.skip


class SeededItems(Dataset):
    """``dataset[index]`` with torch's generator seeded from (seed, epoch, index) for the
    duration, so each sample's random crop, scale and flip are reproducible."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed, epoch, index))
            return self.dataset[index]


# ---------------------------------------------------------------- model


def init_from(model: FCN, path: str | Path) -> int:
    """Load into ``model`` every tensor of ``path`` whose name and shape match (§4.2 staging).

    Used to grow FCN-16s from FCN-32s and FCN-8s from FCN-16s: the new score layers are absent
    from the coarser net and stay zero, so the finer net starts out computing exactly what the
    coarser one did. The input normalisation comes along with the weights it was trained with.

    Returns:
        The number of tensors loaded.

    Raises:
        CheckpointError: ``path`` was trained for another number of classes or backbone.
    """
    meta, state = read_weights(path)
    for key, what in (("num_classes", "classes"), ("backbone", "backbone")):
        if meta.get(key) != model.meta.get(key):
            raise CheckpointError(f"{path}: made for {what} {meta.get(key)} but this model has "
                                  f"{model.meta.get(key)}; --init-from needs the same {what}")
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    model.normalization = Normalization.from_dict(meta["normalization"])
    return len(matched)


def _build_model(config: TrainConfig, dataset: Any, log: Any) -> FCN:
    # A resumed run takes its weights from its checkpoint: neither the ImageNet weights nor
    # --init-from's file are read (or need to exist) again.
    start = not config.resume
    try:
        model = build_fcn(config.model, num_classes=dataset.num_classes,
                          backbone=config.backbone, geometry=config.geometry,
                          at_once=config.at_once,
                          pretrained_backbone=config.pretrained_backbone if start else False)
    except ValueError as exc:  # an unknown backbone, or a geometry it does not have
        raise FcnsegError(str(exc)) from None
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise
        raise FcnsegError(f"backbone {config.backbone}: timm knows no such model; "
                          "see timm.list_models()") from None
    except OSError as exc:
        if config.pretrained_backbone is not True or isinstance(exc, FileNotFoundError):
            raise
        raise FcnsegError(f"could not fetch the ImageNet weights of {config.backbone} ({exc}); "
                          "download them once, or pass a weight file: --pretrained-backbone "
                          "PATH") from None
    model.meta.update(classes=dataset.classes, palette=[list(c) for c in dataset.palette],
                      ignore_index=dataset.ignore_index)
    if config.init_from and start:
        n = init_from(model, config.init_from)
        log(f"initialised {n} of {len(model.state_dict())} tensors from {config.init_from}")
    if config.freeze_backbone:
        # Transfer learning: the backbone's features and statistics stay as they are.
        model.backbone.requires_grad_(False)
    return model


# ---------------------------------------------------------------- the run


class Trainer:
    """The state of one run: model, optimiser, position in training, metrics so far."""

    def __init__(self, config: TrainConfig, procs: Processes) -> None:
        self.config, self.procs = config, procs
        self.run_dir = Path(config.out)
        self.device = procs.device
        if config.sync_bn and procs.world > 1 and self.device.type != "cuda":
            # PyTorch's SyncBatchNorm is CUDA-only: say so now, not in the first forward pass.
            raise FcnsegError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA "
                              "only; drop the flag to train on CPUs")
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.manual_seed(config.seed)  # the same initial weights on every process
        np.random.seed(config.seed % 2**32)
        reading = {"max_pixels": config.max_pixels} if config.max_pixels else {}
        self.train_set = build_dataset(config.dataset, config.root, config.train_split,
                                       **reading)
        self.train_set.transform = train_transform(
            crop=config.crop, scale=config.scale, hflip=config.hflip, jitter=config.jitter,
            ignore_index=self.train_set.ignore_index)
        self.val_set = build_dataset(config.dataset, config.root, config.val_split, **reading)
        self.skipped = self._skip_bad() if config.skip_bad else []
        self.model = _build_model(config, self.train_set, self.log)
        if config.sync_bn and procs.world > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        memory = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=memory)
        self.net: nn.Module = self.model
        if procs.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.loss = SegmentationLoss(ignore_index=self.train_set.ignore_index,
                                     reduction=config.reduction, weight=self._class_weights(),
                                     sampling=config.loss_sampling).to(self.device)
        self.optimizer = build_optimizer(self.model, config)
        self.sampler = EpochSampler(self.train_set, world=procs.world, rank=procs.rank,
                                    seed=config.seed)
        self.loader = DataLoader(
            SeededItems(self.train_set, config.seed), batch_size=config.batch_size,
            sampler=self.sampler, num_workers=config.workers,
            persistent_workers=config.workers > 0, pin_memory=self.device.type == "cuda",
            # Its own generator: creating an iterator then leaves the global one untouched.
            generator=torch.Generator().manual_seed(config.seed),
            collate_fn=functools.partial(collate_pad, ignore_index=self.train_set.ignore_index))
        self.batches = math.ceil(self.sampler.num_samples / config.batch_size)
        self.steps_per_epoch = math.ceil(self.batches / config.accumulate)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.lr_factor = lr_factor(config, self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.saved_step: int | None = None  # the step of the last checkpoint written
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.plotted = -math.inf  # when curves.png was last drawn
        self.epoch_loss = [0.0, 0]  # sum and count of this epoch's batch losses
        # Each process its own dropout masks, once the shared initial weights are drawn.
        torch.manual_seed(_mix(config.seed, procs.rank, 1))
        if config.resume:
            self._restore(self.run_dir / "last.safetensors")

    # ------------------------------------------------------------ pieces

    def log(self, message: str) -> None:
        if self.procs.main:
            tqdm.write(message, file=sys.stdout)

    def _skip_bad(self) -> list[str]:
        """Check every sample of both splits once (each process its share), drop the bad
        ones, and list them on stderr; their messages."""
        skipped: list[str] = []
        for dataset in (self.train_set, self.val_set):
            mine = range(self.procs.rank, len(dataset), self.procs.world)
            bad = find_bad_samples(dataset, mine, workers=self.config.workers)
            if self.procs.world > 1:
                parts: list[Any] = [None] * self.procs.world
                dist.all_gather_object(parts, bad)
                bad = {i: message for part in parts for i, message in part.items()}
            drop_samples(dataset, bad)
            skipped += [bad[i] for i in sorted(bad)]
        if skipped and self.procs.main:
            print(f"skipping {len(skipped)} bad sample{'s' * (len(skipped) != 1)}:",
                  *(f"  {m}" for m in skipped), sep="\n", file=sys.stderr)
        return skipped

    def _diverged(self, step: int, what: str) -> FcnsegError:
        """The one-line error that stops a run whose loss or weights are no longer finite."""
        last = self.run_dir / "last.safetensors"
        kept = (f"the last checkpoint, {last} (step {self.saved_step}), is kept"
                if self.saved_step is not None else "no checkpoint was written")
        return FcnsegError(f"step {step}: {what}; training stopped and {kept}; lower --lr (the "
                           "summed loss wants ~1e-10) or turn off --amp, and train again")

    def _check_finite(self) -> None:
        """Refuse to go on with (and to save) weights that are no longer finite: one huge step
        can leave inf in them while the loss it was computed from was finite. Collective."""
        tensors = [t for t in itertools.chain(self.model.parameters(), self.model.buffers())
                   if t.is_floating_point()]
        finite = torch.stack([torch.isfinite(t).all() for t in tensors]).all()
        if self.procs.sum((~finite).float().reshape(1)).item():
            raise self._diverged(self.step, "the weights are no longer finite (the training "
                                            "diverged)")

    def _class_weights(self) -> Tensor | None:
        spec = self.config.class_weights
        if not spec:
            return None
        if spec == "median-frequency":
            return median_frequency_weights(self.train_set)
        try:  # "1,2,3" from the command line, or a list from a config file
            values = spec.split(",") if isinstance(spec, str) else spec
            weights = torch.tensor([float(w) for w in values])
        except (ValueError, TypeError):
            raise FcnsegError(f"class weights {spec!r}: expected 'median-frequency' or "
                              "comma-separated numbers") from None
        if len(weights) != self.train_set.num_classes:
            raise FcnsegError(f"class weights: {len(weights)} given but the dataset has "
                              f"{self.train_set.num_classes} classes")
        return weights

    def _micro_batch(self, images: Tensor, masks: Tensor, generator: torch.Generator,
                     scale: float, sync: bool) -> float:
        """Forward and backward of one batch; returns its loss (the same on every process)."""
        memory = torch.channels_last if self.config.channels_last else torch.contiguous_format
        x = self.model.normalization(images.to(self.device, non_blocking=True))
        target = masks.to(self.device, non_blocking=True)
        no_sync = self.net.no_sync if isinstance(self.net, DistributedDataParallel) and not sync \
            else contextlib.nullcontext
        with no_sync():
            with autocast(self.device, self.config.amp):
                try:
                    logits = self.net(x.contiguous(memory_format=memory))
                except ValueError as exc:
                    if "more than 1 value per channel" not in str(exc):
                        raise
                    raise FcnsegError(
                        f"batch norm needs more than one value per channel, but batches of "
                        f"{len(images)} image(s) of {images.shape[-2]}×{images.shape[-1]} px "
                        "leave the deepest layer a single position; use a larger --crop or "
                        "--batch-size, or --freeze-backbone") from None
            loss = self.loss(logits, target, generator)
            value = self.procs.sum(loss.detach().float().reshape(1)).item() / self.procs.world
            if not math.isfinite(value):
                raise self._diverged(self.step + 1, f"the loss is {value}")
            self.scaler.scale(loss * scale).backward()
        return value

    def _optimizer_step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self.step_in_epoch += 1

    def train_epoch(self) -> float:
        """Train from the current position to the end of the epoch; the mean batch loss."""
        config = self.config
        self.net.train()
        if config.freeze_backbone:
            self.model.backbone.eval()
        self.sampler.set_epoch(self.epoch)
        self.sampler.skip = self.step_in_epoch * config.accumulate * config.batch_size
        first = self.step_in_epoch * config.accumulate
        bar = tqdm(total=self.batches, initial=first, disable=not self.procs.main or None,
                   desc=f"epoch {self.epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   dynamic_ncols=True)
        with bar:
            self._train_batches(bar, first)
        total, count = self.epoch_loss
        return total / max(count, 1)

    def _train_batches(self, bar: tqdm, first: int) -> None:
        config = self.config
        images_seen, start = 0, time.perf_counter()
        for i, (images, masks) in enumerate(self.loader, start=first):
            group_start = i - i % config.accumulate
            group = min(config.accumulate, self.batches - group_start)
            last_of_group = i == group_start + group - 1
            # With the mean loss, the K batches of a step (and the processes, which
            # DistributedDataParallel averages) are averaged, so neither K nor the number of
            # processes changes the learning rate. The summed loss (§4.3, the reference) is
            # summed over both: undo the processes' averaging.
            scale = 1 / group if config.reduction == "mean" else float(self.procs.world)
            generator = torch.Generator().manual_seed(
                _mix(config.seed, self.procs.rank, self.step, i))
            value = self._micro_batch(images, masks, generator, scale, sync=last_of_group)
            self.epoch_loss[0] += value
            self.epoch_loss[1] += 1
            images_seen += len(images) * self.procs.world
            bar.update()
            bar.set_postfix(loss=f"{value:.4g}",
                            img_s=f"{images_seen / (time.perf_counter() - start):.1f}")
            if last_of_group:
                self._optimizer_step()
                every = config.checkpoint_every
                if every and self.step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                    self.checkpoint()

    def validate(self) -> dict[str, Any]:
        """The four metrics on the validation split, exact across processes."""
        self._check_finite()
        if self.procs.world > 1:
            # Every process scores with rank 0's batch-norm statistics, as one process would.
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        shard = Subset(self.val_set, range(self.procs.rank, len(self.val_set), self.procs.world))
        whole, _ = confusion(self.model, shard, num_classes=self.val_set.num_classes,
                             ignore_index=self.val_set.ignore_index,
                             batch_size=self.config.val_batch_size, workers=0,
                             device=self.device, amp=self.config.amp,
                             channels_last=self.config.channels_last)
        self.procs.sum(whole.matrix)
        return whole.scores()

    # ------------------------------------------------------------ checkpoints and logs

    def checkpoint(self) -> None:
        """Write ``last.safetensors`` (collective: every process sends its RNG states)."""
        self._check_finite()
        rng = self.procs.gather(rng_state(self.device))
        if self.procs.main:
            info = {"config": self.config.to_dict(), "epoch": self.epoch,
                    "step_in_epoch": self.step_in_epoch, "step": self.step,
                    "epoch_loss": self.epoch_loss, "best": self.best, "history": self.history,
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(), "world": self.procs.world}
            write_state(self.run_dir / "last.safetensors", model=self.model,
                        optimizer=self.optimizer, rng=rng, info=info)
        self.saved_step = self.step
        self.procs.barrier()

    def _restore(self, path: Path) -> None:
        if not path.is_file():
            raise FcnsegError(f"{path}: nothing to resume; train without --resume first, or "
                              "point --out at the run directory")
        state = read_state(path)
        info = state.info
        try:
            self.model.load_state_dict(state.model)
            self.optimizer.load_state_dict(state.optimizer)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: does not fit this run's model or optimiser "
                                  f"({str(exc).splitlines()[0]}); resume with the settings "
                                  "the run was started with") from None
        self.model.normalization = Normalization.from_dict(info["model"]["normalization"])
        self.scheduler.load_state_dict(info["scheduler"])
        if info["scaler"]:
            self.scaler.load_state_dict(info["scaler"])
        self.epoch, self.step_in_epoch, self.step = (info["epoch"], info["step_in_epoch"],
                                                     info["step"])
        self.epoch_loss, self.best, self.history = (info["epoch_loss"], info["best"],
                                                    info["history"])
        self.saved_step = self.step
        if self.procs.main:
            # A kill mid-write leaves atomic_write's temporary file (".NAME.xxxx") behind.
            for name in ("last.safetensors", "best.safetensors", "metrics.jsonl", "curves.png",
                         "config.yaml"):
                for stale in self.run_dir.glob(f".{name}.*"):
                    stale.unlink(missing_ok=True)
        if info["world"] == self.procs.world:
            set_rng_state(state.rng[self.procs.rank], self.device)
        else:
            self.log(f"resuming {info['world']}-process training with {self.procs.world}: "
                     "the data order is kept, the dropout draws are not")
        self.log(f"resumed from {path} at epoch {self.epoch + 1}, step {self.step}")

    def _write_logs(self) -> None:
        lines = "".join(json.dumps(h) + "\n" for h in self.history)
        atomic_write(self.run_dir / "metrics.jsonl", lambda tmp: tmp.write_text(lines))
        # Drawing takes about half a second: after every epoch, but at most every
        # PLOT_EVERY seconds when epochs are short, and always after the last.
        now = time.monotonic()
        if now - self.plotted >= PLOT_EVERY or self.epoch == self.config.epochs:
            atomic_write(self.run_dir / "curves.png",
                         lambda tmp: plot_curves(self.history, tmp))
            self.plotted = now

    def _end_epoch(self, train_loss: float, scores: dict[str, Any], seconds: float) -> None:
        record = {"epoch": self.epoch + 1, "step": self.step, "train_loss": train_loss,
                  "lr": self.config.lr * self.lr_factor(self.step),
                  **{k: scores[k] for k in METRICS}, "time": round(seconds, 2)}
        self.history.append(record)
        is_best = self.best is None or scores["mean_iu"] > self.best["mean_iu"]
        if is_best:
            self.best = {"epoch": self.epoch + 1, "step": self.step,
                         **{k: scores[k] for k in METRICS}}
            if self.procs.main:
                save(self.model, self.run_dir / "best.safetensors", scores=scores,
                     epoch=self.epoch + 1, step=self.step)
        self.epoch, self.step_in_epoch, self.epoch_loss = self.epoch + 1, 0, [0.0, 0]
        self.checkpoint()
        if self.procs.main:
            self._write_logs()
        self.log(f"epoch {record['epoch']}/{self.config.epochs}  step {self.step}  "
                 f"loss {train_loss:.4g}  lr {record['lr']:.3g}  "
                 f"pixel acc {scores['pixel_acc']:.2%}  mean IU {scores['mean_iu']:.2%}  "
                 f"({seconds:.0f} s){'  best' if is_best else ''}")

    def run(self) -> dict[str, Any]:
        if self.procs.main:
            text = self.config.to_yaml()
            atomic_write(self.run_dir / "config.yaml", lambda tmp: tmp.write_text(text))
        while self.epoch < self.config.epochs:
            start = time.perf_counter()
            train_loss = self.train_epoch()
            self._end_epoch(train_loss, self.validate(), time.perf_counter() - start)
        return {"best": self.best, "last": self.history[-1] if self.history else None,
                "history": self.history, "steps": self.step, "run_dir": str(self.run_dir),
                "skipped": self.skipped,
                "best_path": str(self.run_dir / "best.safetensors")}


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> None:
    """Training loss and validation metrics against epochs, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(figure)
    loss_axes, metric_axes = figure.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    loss_axes.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key, label in zip(METRICS, ("pixel acc.", "mean acc.", "mean IU", "f.w. IU"),
                          strict=True):
        metric_axes.plot(epochs, [100 * h[key] for h in history], marker="o", label=label)
    metric_axes.set(xlabel="epoch", ylabel="%", title="validation")
    metric_axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)


def train(config: TrainConfig) -> dict[str, Any]:
    """Train an FCN as ``config`` describes (see :class:`~fcnseg.config.TrainConfig`).

    Returns:
        ``best`` (epoch, step and the four metrics of the best epoch by mean IU), ``last``
        (the last epoch's record), ``history`` (one record per epoch, as in ``metrics.jsonl``),
        ``steps``, ``run_dir`` and ``best_path``.

    Raises:
        FcnsegError: a setting, file or checkpoint the user can fix, or a non-finite loss.
    """
    config = config.resolved()
    procs = Processes(config.device)
    try:
        return Trainer(config, procs).run()
    finally:
        procs.close()
