"""Starting a model from another's weights (``--init-from``): staged training and fine-tuning.

Two uses, one rule, "take every tensor whose name and shape match":

* **Staging** (§4.2): FCN-16s grows from a trained FCN-32s, FCN-8s from FCN-16s. The new score
  layers are absent from the coarser net and stay at zero, so the finer net starts out
  computing exactly what the coarser one did.
* **Fine-tuning across class sets**: a model trained on other classes (a CamVid model onto a
  user's three road classes). The backbone is taken; the class-sized layers (``score_*``, the
  learned ``upscore*``) belong to the old classes and are started afresh as §4.2 starts new
  layers: scores at zero, upsampling bilinear. A *class map* carries the score rows (and the
  upsampling's entries) of classes both sets share, so that they start where the old model was.

What was taken and what was not is returned as a :class:`Transfer` and logged line by line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from ..files import read_weights
from ..models import FCN, ModelMeta

__all__ = ["Transfer", "init_from", "parse_class_map"]

# Layers whose first dimensions are the classes: the score path (§4.1–4.2), any head suffix.
_CLASS_LAYERS = ("score_", "upscore")


@dataclass
class Transfer:
    """What :func:`init_from` did: tensors taken whole, tensors left as built (and why),
    tensors of the file not used, and the classes whose score rows were carried over."""

    source: str
    taken: list[str] = field(default_factory=list)
    fresh: dict[str, str] = field(default_factory=dict)  # name → why
    unused: list[str] = field(default_factory=list)
    carried: list[tuple[str, str]] = field(default_factory=list)  # (this class, file's class)

    def lines(self) -> list[str]:
        """The log: one line for what was taken, then each exception."""
        total = len(self.taken) + len(self.fresh)
        out = [f"initialised {len(self.taken)} of {total} tensors from {self.source}"]
        for name, why in self.fresh.items():
            out.append(f"  not taken: {name} ({why})")
        if self.unused:
            out.append(f"  unused from the file: {', '.join(self.unused)}")
        if self.carried:
            pairs = ", ".join(new if new == old else f"{new}←{old}" for new, old in self.carried)
            out.append(f"  score rows carried over for {len(self.carried)} classes: {pairs}")
        return out


def init_from(model: FCN, path: str | Path, class_map: str | None = None) -> Transfer:
    """Load into ``model`` every tensor of ``path`` whose name and shape match.

    The input normalisation comes along with the weights it was trained with.

    Args:
        model: the model to start, its classes already named (``model.meta.classes``).
        path: a model file, training checkpoint or model address (``hf://…``).
        class_map: which of the file's classes start which of ``model``'s
            (:func:`parse_class_map`); only where the class sets differ.

    Raises:
        CheckpointError: ``path`` was trained on another backbone or number of input channels.
        ConfigError: a class map naming classes that are not there.
    """
    meta, state = read_weights(path)
    for key, what in (("backbone", "backbone"), ("in_channels", "input channels")):
        if getattr(meta, key) != getattr(model.meta, key):
            raise CheckpointError(
                f"{path}: made for {what} {getattr(meta, key)} but this model has "
                f"{getattr(model.meta, key)}; --init-from needs the same {what}"
            )
    same = _same_classes(meta, model.meta)
    try:  # a mapping is between the file's classes and the model's: the file is named
        pairs = parse_class_map(class_map, meta, model.meta) if class_map and not same else []
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if class_map and same:
        raise ConfigError(
            f"--class-map: {path} was trained on the same classes as this model; "
            "leave --class-map out"
        )
    report = Transfer(source=str(path))
    own = model.state_dict()
    loaded: dict[str, Tensor] = {}
    for name, tensor in own.items():
        theirs = state.get(name)
        if not same and name.startswith(_CLASS_LAYERS):
            carried = theirs is not None and _carry(name, tensor, theirs, pairs, meta, model.meta)
            report.fresh[name] = "other classes: started as §4.2" + (
                ", the shared classes' rows carried over" if carried else ""
            )
        elif theirs is None:
            report.fresh[name] = "not in the file: started as §4.2"
        elif theirs.shape != tensor.shape:
            report.fresh[name] = f"{tuple(theirs.shape)} in the file, {tuple(tensor.shape)} here"
        else:
            loaded[name] = theirs
            report.taken.append(name)
    report.unused = [name for name in state if name not in own]
    report.carried = [(model.meta.classes[i], meta.classes[j]) for i, j in pairs]
    model.load_state_dict(loaded, strict=False)
    model.normalization = meta.normalization
    return report


def _same_classes(theirs: ModelMeta, ours: ModelMeta) -> bool:
    if theirs.num_classes != ours.num_classes or theirs.heads != ours.heads:
        return False
    # Unnamed classes of the same count are the same (staging a model of one's own).
    return theirs.classes is None or ours.classes is None or theirs.classes == ours.classes


def parse_class_map(spec: str, theirs: ModelMeta, ours: ModelMeta) -> list[tuple[int, int]]:
    """(this model's class index, the file's class index) pairs from ``spec``.

    ``spec`` is ``auto`` (classes of the same name, case aside), ``NEW=OLD,NEW=OLD`` (names),
    or the path of a JSON or YAML file mapping new class names to old ones.
    """
    if theirs.heads or ours.heads:
        raise ConfigError("--class-map: not for nets of several heads; leave it out")
    if not theirs.classes or not ours.classes:
        raise ConfigError("--class-map: both models need class names; the file has none")
    old = {name.lower(): i for i, name in enumerate(theirs.classes)}
    new = {name.lower(): i for i, name in enumerate(ours.classes)}
    if spec == "auto":
        pairs = [(new[n], old[n]) for n in new if n in old]
        if not pairs:
            raise ConfigError(
                "--class-map auto: no class name is shared between "
                f"{', '.join(ours.classes)} and {', '.join(theirs.classes)}; "
                "map them by name: --class-map NEW=OLD,..."
            )
        return pairs
    mapping = _read_mapping(spec)
    pairs = []
    for a, b in mapping.items():
        for name, known, which in ((a, new, "this model's"), (b, old, "the file's")):
            if str(name).lower() not in known:
                names = ours.classes if known is new else theirs.classes
                raise ConfigError(
                    f"--class-map: {name!r} is not one of {which} classes ({', '.join(names)})"
                )
        pairs.append((new[str(a).lower()], old[str(b).lower()]))
    if len({i for i, _ in pairs}) < len(pairs):
        raise ConfigError("--class-map: a class of this model is mapped twice")
    return pairs


def _read_mapping(spec: str) -> dict[str, str]:
    path = Path(spec)
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"--class-map {spec}: no such file; check the path")
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"--class-map {spec}: cannot be read ({exc})") from None
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"--class-map {spec}: expected a mapping of new to old class names")
        return {str(k): str(v) for k, v in data.items()}
    items = [item.split("=") for item in spec.split(",") if item.strip()]
    if not items or any(len(item) != 2 or not all(p.strip() for p in item) for item in items):
        raise ConfigError(
            f"--class-map {spec!r}: expected auto, NEW=OLD,NEW=OLD, or a .json/.yaml file"
        )
    return {a.strip(): b.strip() for a, b in items}


def _carry(
    name: str,
    own: Tensor,
    theirs: Tensor,
    pairs: list[tuple[int, int]],
    old: ModelMeta,
    new: ModelMeta,
) -> bool:
    """Copy the shared classes' entries of a class-sized tensor into ``own``, in place: rows
    of a score layer (``C×K×1×1`` and its bias), rows and columns of a learned ``C×C×k×k``
    upsampling. Returns whether anything was copied."""
    c_new, c_old = new.num_classes, old.num_classes
    if own.shape[0] != c_new or theirs.shape[0] != c_old or own.shape[2:] != theirs.shape[2:]:
        return False
    if not pairs:
        return False
    rows_new = torch.tensor([i for i, _ in pairs])
    rows_old = torch.tensor([j for _, j in pairs])
    with torch.no_grad():
        if name.startswith("upscore") and own.shape[1] == c_new and theirs.shape[1] == c_old:
            own[rows_new[:, None], rows_new[None, :]] = theirs[rows_old[:, None], rows_old[None, :]]
        elif own.shape[1:] == theirs.shape[1:]:
            own[rows_new] = theirs[rows_old]
        else:
            return False
    return True
