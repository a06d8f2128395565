"""Finding the unreadable or inconsistent samples of a dataset before training on it
(``--skip-bad``)."""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from .datasets import SegmentationDataset
from .decode import check_same_size

__all__ = ["drop_samples", "find_bad_samples"]


class _Checked(Dataset):
    """``(index, None)`` for a sample that reads and checks cleanly, else ``(index, message)``."""

    def __init__(self, dataset: SegmentationDataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, str | None]:
        index = self.indices[position]
        try:
            # What __getitem__ reads and checks, before any transform.
            image = self.dataset.read_image(self.dataset.samples[index][0])
            check_same_size(image, self.dataset.load_mask(index), self.dataset.samples[index][1])
        except DataError as error:
            return index, str(error)
        return index, None


def find_bad_samples(
    dataset: SegmentationDataset, indices: Sequence[int] | None = None, *, workers: int = 0
) -> dict[int, str]:
    """Read and check every sample (or those of ``indices``) once; the bad ones' messages.

    A sample is bad when its image or mask is unreadable or over the pixel limit, the mask's
    size differs from the image's, or a label is neither a class nor the ignore label. This is
    what ``--skip-bad`` runs up front, ``workers`` processes reading in parallel.
    """
    checked = _Checked(dataset, range(len(dataset)) if indices is None else indices)
    loader = DataLoader(checked, batch_size=None, num_workers=workers)
    return {index: message for index, message in loader if message is not None}


def drop_samples(dataset: SegmentationDataset, bad: dict[int, str]) -> None:
    """Remove the samples ``bad`` names from ``dataset``; refuse to leave it empty."""
    if bad and len(bad) == len(dataset):
        raise DataError(
            f"{dataset.samples[0][0].parent}: all {len(dataset)} samples are bad "
            f"(first: {bad[min(bad)]})"
        )
    dataset.samples = [s for i, s in enumerate(dataset.samples) if i not in bad]
    for head in (dataset.heads or {}).values():  # the label sets keep the images' order
        head.samples = [s for i, s in enumerate(head.samples) if i not in bad]
