"""Data parallelism and reproducible randomness across processes and resumptions.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its shard of the data with
DistributedDataParallel (NCCL on GPUs, gloo on CPUs). Every random draw is a pure function of
the position in training: the sampler's order of (seed, epoch), each sample's augmentation of
(seed, epoch, index) whichever worker loads it. That is what makes resumption exact.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from ..device import resolve_device

__all__ = ["EpochSampler", "Processes", "SeededItems", "mix"]


def mix(*numbers: int) -> int:
    """A 63-bit seed from integers, well spread (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(2, np.uint64)[0] >> 1)


class Processes:
    """This process's place among the data-parallel ones (one process without torchrun)."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", local if self.world > 1 else self.device.index or 0)
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

    def gather_objects(self, value: Any) -> list[Any]:
        """Every process's picklable ``value``, by rank."""
        if self.world == 1:
            return [value]
        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, value)
        return parts

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (batch-norm statistics) on every process."""
        if self.world > 1:
            for buffer in module.buffers():
                dist.broadcast(buffer, 0)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


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


class Repeated(Dataset):
    """``dataset`` passed over ``times`` times per epoch: index ``i`` is sample ``i mod n``,
    so each pass draws its own augmentation (:class:`SeededItems` seeds by index)."""

    def __init__(self, dataset: Dataset, times: int) -> None:
        self.dataset, self.times = dataset, times

    def __len__(self) -> int:
        return len(self.dataset) * self.times

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]


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
            torch.manual_seed(mix(self.seed, epoch, index))
            return self.dataset[index]
