"""``fcnseg data check``: everything a user should know about a dataset before training on it.

Reads every file once and reports, per split: the number of pairs, image sizes, the label
values found in the masks (as stored, and as classes after the label map) with their pixel
counts, and what looks wrong, each with its fix: binary 0/255 masks whose 255 is the ignore
label, classes never seen in training, masks whose size differs from their image, unreadable
files, and the same image in two splits.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .balance import label_space_problems
from .bands import image_header
from .datasets import SegmentationDataset, build_dataset
from .decode import check_labels

__all__ = ["SPLITS", "check_dataset", "format_report"]

SPLITS = ("train", "val", "test")


def _splits(name: str, root: Path) -> list[str]:
    """The splits to look at: the usual three, and for a folder tree every folder with images."""
    found = [p.parent.name for p in sorted(root.glob("*/images")) if p.is_dir()]
    return list(dict.fromkeys([*SPLITS, *found])) if name in ("folder", "synthetic") else [*SPLITS]


def _sample(dataset: SegmentationDataset, index: int) -> tuple[dict[str, Any], str | None]:
    """One sample's facts (image size, stored values, classes), or its problem."""
    image_path, mask_path = dataset.samples[index]
    facts: dict[str, Any] = {"image": str(image_path), "mask": str(mask_path)}
    try:
        *size, channels = image_header(image_path, max_pixels=dataset.max_pixels)
        facts["size"] = tuple(size)
        if dataset.in_channels != 3 and channels != dataset.in_channels:
            return facts, (
                f"{image_path}: image has {channels} channels but in_channels is "
                f"{dataset.in_channels}; pass --in-channels {channels}, or fix the image"
            )
        stored = dataset.read_labels(mask_path)
        facts["stored"] = Counter(dict(zip(*np.unique(stored, return_counts=True), strict=True)))
        if stored.shape[::-1] != tuple(facts["size"]):
            h, w = stored.shape
            return facts, (
                f"{mask_path}: mask is {w}×{h} but its image is "
                f"{facts['size'][0]}×{facts['size'][1]}; re-export the mask at the "
                "image's size"
            )
        # The stored values, mapped and checked as load_mask would, without reading again.
        labels = (
            dataset.label_map.apply(stored, dataset.ignore_index) if dataset.label_map else stored
        )
        check_labels(labels, mask_path, dataset.num_classes, dataset.ignore_index)
        facts["classes"] = Counter(dict(zip(*np.unique(labels, return_counts=True), strict=True)))
        facts["digest"] = hashlib.sha1(Path(image_path).read_bytes()).hexdigest()
    except DataError as error:
        return facts, str(error)
    except OSError as error:
        return facts, f"{image_path}: cannot read ({error.strerror or error}); check the file"
    return facts, None


def check_dataset(
    name: str,
    root: str | Path,
    *,
    splits: Iterable[str] | None = None,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """The report of dataset ``name`` at ``root`` (``options`` go to the reader)."""
    from tqdm import tqdm

    root = Path(root)
    report: dict[str, Any] = {"dataset": name, "root": str(root), "splits": {}, "findings": []}
    digests: dict[str, str] = {}
    for split in splits or _splits(name, root):
        try:
            dataset = build_dataset(name, root, split, **options)
        except DataError as error:
            if splits is not None or split == "train" or "no such" not in str(error):
                report["findings"].append(str(error))
            continue
        n = dataset.num_classes
        stored: Counter = Counter()
        classes = np.zeros(n + 1, dtype=np.int64)
        sizes: Counter = Counter()
        for index in tqdm(
            range(len(dataset)),
            desc=f"{name} {split}",
            unit="pair",
            disable=not progress,
            leave=False,
        ):
            facts, problem = _sample(dataset, index)
            if problem:
                report["findings"].append(problem)
                continue
            sizes[facts["size"]] += 1
            stored.update({int(k): int(v) for k, v in facts["stored"].items()})
            for label, count in facts["classes"].items():
                classes[n if label == dataset.ignore_index else int(label)] += int(count)
            if facts["digest"] in digests and digests[facts["digest"]] != split:
                report["findings"].append(
                    f"{facts['image']}: the same image is in {digests[facts['digest']]} and "
                    f"{split}; keep each image in one split, or the scores flatter the model"
                )
            digests.setdefault(facts["digest"], split)
        report["classes"] = dataset.classes
        report["ignore_index"] = dataset.ignore_index
        report["splits"][split] = {
            "pairs": len(dataset),
            "sizes": {f"{w}×{h}": c for (w, h), c in sizes.most_common()},
            "stored_values": {str(k): v for k, v in sorted(stored.items())},
            "class_pixels": {
                name: int(c) for name, c in zip(dataset.classes, classes[:n], strict=True)
            },
            "ignored_pixels": int(classes[n]),
        }
        _findings(report, split, dataset, classes)
    return report


def _findings(
    report: dict[str, Any],
    split: str,
    dataset: SegmentationDataset,
    classes: np.ndarray,
) -> None:
    """What the counts of one split say is wrong, with the fix (the rules training applies;
    classes never seen matter in the training split only)."""
    n, where = dataset.num_classes, f"{report['root']} ({split})"
    errors, warnings = label_space_problems(dataset, classes[:n], int(classes[n]), where)
    report["findings"] += errors + (warnings if split == "train" else [])


def format_report(report: dict[str, Any]) -> str:
    """The report as a table for the terminal."""
    lines = [f"{report['dataset']} at {report['root']}", ""]
    splits = report["splits"]
    if splits:
        names = report["classes"]
        width = max(len(s) for s in [*names, "ignored", "pairs", "distinct sizes"])
        lines.append(f"{'':<{width}}" + "".join(f"  {s:>12}" for s in splits))
        lines.append(
            f"{'pairs':<{width}}" + "".join(f"  {v['pairs']:>12,}" for v in splits.values())
        )
        lines.append(
            f"{'distinct sizes':<{width}}"
            + "".join(f"  {len(v['sizes']):>12}" for v in splits.values())
        )
        for name in names:
            lines.append(
                f"{name:<{width}}"
                + "".join(f"  {v['class_pixels'][name]:>12,}" for v in splits.values())
            )
        lines.append(
            f"{'ignored':<{width}}"
            + "".join(f"  {v['ignored_pixels']:>12,}" for v in splits.values())
        )
        for split, v in splits.items():
            shown = ", ".join(f"{k}: {c:,}" for k, c in list(v["stored_values"].items())[:12])
            lines.append(f"\nmask values in {split} (as stored): {shown}")
    findings = report["findings"]
    lines.append("")
    lines.append(f"{len(findings)} finding(s)" + (":" if findings else "; ready to train"))
    lines += [f"  - {f}" for f in findings]
    return "\n".join(lines)
