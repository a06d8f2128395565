"""Publishing a model on the Hugging Face Hub: the files a repository holds, and the upload.

A published model is three files: the weights (``model.safetensors``, the fcnseg model file
itself, so ``fcnseg.load("hf://OWNER/REPO")`` reads it), ``config.json`` (its metadata as plain
JSON, for tools that do not read safetensors headers) and ``README.md``, the model card: the
Hub's YAML header (licence, library, task, tags) and what a user needs to judge the model, all
read from the model file and its run directory (classes and palette, backbone and variant, the
validation scores, the training settings and the command that reproduces them).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..errors import CheckpointError, ConfigError, FcnsegError
from ..models import ModelMeta
from .atomic import atomic_write
from .header import TRAIN_KEY, read_header
from .hub import DEFAULT_FILE
from .modelfile import load, read_metadata, save

__all__ = ["CARD_FILE", "CONFIG_FILE", "model_card", "push", "write_repository"]

CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
# The training settings the card shows and the repository keeps, from the run directory.
TRAINING_FILE = "training.yaml"
SCORES = (("pixel_acc", "pixel accuracy"), ("mean_acc", "mean accuracy"), ("mean_iu", "mean IU"))


def write_repository(
    model_path: str | Path, folder: str | Path, *, repo: str, license: str
) -> list[Path]:
    """Write the files the Hub repository ``repo`` of ``model_path`` holds into ``folder``.

    A training checkpoint (``last.safetensors``) is written as the model file it holds.

    Returns:
        The files written.
    """
    model_path, folder = Path(model_path), Path(folder)
    meta = read_metadata(model_path)  # checks that it is an fcnseg model before anything
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: a file, not a folder; name a folder to write into")
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / DEFAULT_FILE
    if TRAIN_KEY in read_header(model_path):  # a checkpoint: the model file it holds
        save(load(model_path), weights, **meta.extra)
    else:
        atomic_write(weights, lambda tmp: shutil.copyfile(model_path, tmp))
    written = [weights]
    plain = dataclasses.replace(meta, extra={}).to_json()  # scores go to the card
    config = {"library_name": "fcnseg", "fcnseg_version": __version__, **plain}
    written.append(_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n"))
    settings = _training_settings(model_path)
    if settings is not None:
        written.append(
            _write_text(folder / TRAINING_FILE, yaml.safe_dump(settings, sort_keys=False))
        )
    card = model_card(meta, repo=repo, license=license, settings=settings)
    written.append(_write_text(folder / CARD_FILE, card))
    return written


def push(
    model_path: str | Path,
    repo: str,
    *,
    license: str,
    private: bool = False,
    token: str | None = None,
) -> str:
    """Publish ``model_path`` as the Hub repository ``repo`` (created if need be).

    Returns:
        The repository's address.
    """
    try:
        from huggingface_hub import HfApi, errors
        from huggingface_hub.utils import validate_repo_id
    except ImportError:
        raise FcnsegError("fcnseg push needs huggingface_hub: pip install 'fcnseg[hub]'") from None
    try:
        validate_repo_id(repo)
    except errors.HFValidationError:
        raise ConfigError(f"{repo}: not a Hub repository name; expected OWNER/REPO") from None
    if "/" not in repo:
        raise ConfigError(f"{repo}: name the owner too: OWNER/REPO")
    with tempfile.TemporaryDirectory() as tmp:
        write_repository(model_path, tmp, repo=repo, license=license)
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo, private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo, folder_path=tmp, commit_message=f"fcnseg {__version__}: upload model"
            )
        except errors.HfHubHTTPError as exc:
            raise FcnsegError(
                f"{repo}: the upload failed ({str(exc).splitlines()[0]}); log in with `hf auth "
                "login` or pass --token, and check the repository's name"
            ) from None
        except Exception as exc:  # the HTTP client's own connection errors are not OSErrors
            raise FcnsegError(f"{repo}: the Hub cannot be reached ({exc})") from None
    return str(url)


def model_card(meta: ModelMeta, *, repo: str, license: str, settings: dict[str, Any] | None) -> str:
    """The model card: the Hub's metadata header and a page written from the model file."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        license=license,
        library_name="fcnseg",
        pipeline_tag="image-segmentation",
        tags=["fcnseg", "semantic-segmentation", "fcn", meta.variant, meta.backbone],
        datasets=[settings["dataset"]] if settings and settings.get("dataset") else None,
    )
    name = meta.variant.replace("fcn", "FCN-")
    lines = [
        f"# {name} ({meta.backbone})",
        "",
        "A Fully Convolutional Network (Long, Shelhamer and Darrell, CVPR 2015) trained with "
        "[fcnseg](https://pypi.org/project/fcnseg/).",
        "",
        "```python",
        "import fcnseg, PIL.Image",
        f'model = fcnseg.load("hf://{repo}")',
        'mask = fcnseg.Predictor(model)(PIL.Image.open("photo.jpg"))  # H×W class indices',
        "```",
        "",
        f"or `fcnseg predict hf://{repo} photos/ --out masks/`. Input: {meta.in_channels} "
        f"channels; {meta.num_classes} classes; {meta.geometry} geometry.",
        "",
        *_scores_section(meta),
        *_classes_section(meta),
        *_training_section(settings),
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def _scores_section(meta: ModelMeta) -> list[str]:
    scores = meta.extra.get("scores")
    if not isinstance(scores, dict):
        return []
    epoch = meta.extra.get("epoch")
    out = [
        "## Validation scores",
        "",
        f"At the epoch kept (epoch {epoch}), on the run's validation split (paper §5):"
        if epoch
        else "On the run's validation split (paper §5):",
        "",
        "| " + " | ".join(label for _, label in SCORES) + " |",
        "|" + "--:|" * len(SCORES),
        "| " + " | ".join(f"{100 * scores.get(k, float('nan')):.1f}" for k, _ in SCORES) + " |",
        "",
    ]
    return out


def _classes_section(meta: ModelMeta) -> list[str]:
    if not meta.classes:
        return []
    ious = (meta.extra.get("scores") or {}).get("per_class_iu") or [None] * meta.num_classes
    out = ["## Classes", "", "| index | class | colour | validation IU |", "|--:|---|---|--:|"]
    palette = meta.palette or [None] * meta.num_classes
    for i, (name, colour, iu) in enumerate(zip(meta.classes, palette, ious, strict=False)):
        hex_colour = "#{:02x}{:02x}{:02x}".format(*colour) if colour else ""
        shown = f"{100 * iu:.1f}" if isinstance(iu, (int, float)) else ""
        out.append(f"| {i} | {name} | {hex_colour} | {shown} |")
    return [*out, ""]


def _training_section(settings: dict[str, Any] | None) -> list[str]:
    if settings is None:
        return []
    return [
        "## Training",
        "",
        f"Trained with `fcnseg train --config {TRAINING_FILE} --root DATA --out RUN` (the run's "
        "settings, kept in this repository):",
        "",
        "```yaml",
        yaml.safe_dump(settings, sort_keys=False).rstrip(),
        "```",
    ]


def _training_settings(model_path: Path) -> dict[str, Any] | None:
    """The run's settings (``config.yaml`` beside the model file), without local paths."""
    config = model_path.parent / "config.yaml"
    if not config.is_file():
        return None
    try:
        settings = yaml.safe_load(config.read_text())
    except yaml.YAMLError:
        raise CheckpointError(
            f"{config}: not valid YAML; remove it or fix it before publishing"
        ) from None
    if not isinstance(settings, dict):
        return None
    # Where the data and the run were on the trainer's machine means nothing to a reader.
    for key in ("root", "out", "resume", "overwrite"):
        settings.pop(key, None)
    return settings


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path
