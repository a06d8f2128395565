"""The web viewer's server: a Flask app over one model, its run and optionally a dataset split.

Flask because the work behind each request is synchronous PyTorch inference: a threaded WSGI
server and plain functions fit it, Werkzeug bounds uploads (``MAX_CONTENT_LENGTH``) and its test
client exercises every endpoint without a browser. Nothing is read from disk but the model
file, the run's ``metrics.jsonl`` and the dataset's samples by index: no request names a path.

Endpoints (all JSON but the page and the PNGs):

* ``GET /api/info``: the model (classes, palette, variant…) and which pages apply;
* ``POST /api/segment`` (an image file): the class map as an index PNG, each class's share;
  ``GET /api/segment/<id>/mask.png``: the palette PNG to download;
* ``GET /api/inspect``: per-image mean IU (worst first), per-class IU and the confusion matrix
  of the split; ``GET /api/inspect/<i>/<image|truth|prediction|errors>.png``;
* ``GET /api/metrics``: the run's epochs so far (``metrics.jsonl``, read on every request).
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data import SegmentationDataset
from ..data.decode import open_image, to_rgb_tensor
from ..errors import FcnsegError
from ..evaluation.metrics import ConfusionMatrix
from ..files import load
from ..files.masks import display_rgb, mask_image, palette_of
from ..inference import Predictor
from ..models import ModelMeta

__all__ = ["ViewState", "create_app"]

STATIC = Path(__file__).parent / "static"
UPLOAD_BYTES = 64 * 2**20  # an upload larger than this is refused before it is read
# and one of more pixels before it is decoded (the CLI's decompression-bomb guard, tighter)
UPLOAD_PIXELS = 64 * 2**20
KEPT_RESULTS = 8  # segmentations kept for their mask download
# Error map colours: right, wrong, ignored.
RIGHT, WRONG, IGNORED = (40, 160, 60), (220, 40, 40), (90, 90, 90)


@dataclass
class ViewState:
    """What the viewer serves: the model and its predictor, the run, the dataset split."""

    model_path: Path
    run_dir: Path | None
    dataset: SegmentationDataset | None
    predictor: Predictor
    results: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    inspection: dict[str, Any] | None = None
    predictions: list[np.ndarray] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, target: str | Path, dataset: SegmentationDataset | None = None) -> ViewState:
        """``target``: a model file, or a run directory (its ``best.safetensors``)."""
        path = Path(target)
        if path.is_dir():
            run_dir, model_path = path, path / "best.safetensors"
            if not model_path.is_file():
                raise FcnsegError(
                    f"{path}: no best.safetensors in this run directory yet; wait for the "
                    "first epoch, or name a model file"
                )
        else:
            model_path = path
            run_dir = path.parent if (path.parent / "metrics.jsonl").is_file() else None
        model = load(model_path).eval()
        if dataset is not None and dataset.num_classes != model.meta.num_classes:
            raise FcnsegError(
                f"{model_path}: the model has {model.meta.num_classes} classes but the dataset "
                f"{dataset.num_classes}; inspect it on the data it was trained for"
            )
        return cls(model_path, run_dir, dataset, Predictor(model))

    @property
    def meta(self) -> ModelMeta:
        return self.predictor.meta

    def info(self) -> dict[str, Any]:
        meta = self.meta
        classes = list(meta.classes or [str(i) for i in range(meta.num_classes)])
        return {
            "model": {
                "file": self.model_path.name,
                "variant": meta.variant,
                "backbone": meta.backbone,
                "classes": classes,
                "palette": palette_of(meta).tolist(),
                "in_channels": meta.in_channels,
            },
            "inspect": self.dataset is not None,
            "training": self.run_dir is not None,
        }

    # -- Segment

    def segment(self, data: bytes, filename: str) -> dict[str, Any]:
        """The class map of an uploaded image, kept for its download."""
        if self.meta.in_channels != 3:
            raise FcnsegError(
                f"this model takes {self.meta.in_channels}-channel images; the viewer shows RGB "
                "images only: use fcnseg predict"
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            try:
                image = to_rgb_tensor(open_image(path, max_pixels=UPLOAD_PIXELS))
            except FcnsegError as exc:
                raise FcnsegError(str(exc).replace(str(path), filename or "the upload")) from None
        with self.lock:  # one inference at a time: the cores are shared anyway
            mask = self.predictor(image).numpy().astype(np.uint8, copy=False)
        key = f"{len(self.results)}-{abs(hash(mask.tobytes())) % 10**12}"
        self.results[key] = mask
        while len(self.results) > KEPT_RESULTS:
            self.results.popitem(last=False)
        counts = np.bincount(mask.ravel(), minlength=self.meta.num_classes)
        return {
            "id": key,
            "width": int(mask.shape[1]),
            "height": int(mask.shape[0]),
            "shares": (counts / mask.size).tolist(),
            "labels": _png_data_url(Image.fromarray(mask)),
        }

    def mask_png(self, key: str) -> bytes | None:
        mask = self.results.get(key)
        return None if mask is None else _png(mask_image(mask, palette_of(self.meta)))

    # -- Inspect

    def inspect(self) -> dict[str, Any]:
        """Per-image and whole-split scores (computed once, on the first request)."""
        with self.lock:
            if self.inspection is None:
                self.inspection = self._inspect()
        return self.inspection

    def _inspect(self) -> dict[str, Any]:
        data, n = self.dataset, self.meta.num_classes
        assert data is not None
        whole = ConfusionMatrix(n, ignore_index=data.ignore_index)
        images = []
        for i in range(len(data)):
            image, truth = data[i]
            prediction = self.predictor(image)
            self.predictions.append(prediction.numpy().astype(np.uint8, copy=False))
            one = ConfusionMatrix(n, ignore_index=data.ignore_index)
            one.update(prediction.long(), truth)
            whole += one
            name = data.samples[i][0].name
            images.append({"index": i, "name": name, "mean_iu": one.scores()["mean_iu"]})
        images.sort(key=lambda r: (r["mean_iu"] != r["mean_iu"], r["mean_iu"]))  # NaN last
        scores = whole.scores()
        return {
            "images": images,
            "per_class_iu": scores["per_class_iu"],
            "mean_iu": scores["mean_iu"],
            "pixel_acc": scores["pixel_acc"],
            "confusion": whole.matrix.tolist(),
        }

    def inspect_png(self, index: int, kind: str) -> bytes | None:
        data = self.dataset
        if data is None or not 0 <= index < len(data):
            return None
        self.inspect()
        image, truth = data[index]
        truth = truth.numpy()
        prediction = self.predictions[index]
        palette = palette_of(self.meta)
        if kind == "image":
            return _png(Image.fromarray(display_rgb(image.permute(1, 2, 0).numpy())))
        if kind == "prediction":
            return _png(mask_image(prediction, palette))
        ignored = truth == data.ignore_index
        if kind == "truth":  # ignored pixels black
            colours = palette[np.where(ignored, 0, truth)]
            colours[ignored] = 0
            return _png(Image.fromarray(colours))
        if kind == "errors":
            errors = np.empty((*truth.shape, 3), np.uint8)
            errors[...] = RIGHT
            errors[prediction != truth] = WRONG
            errors[ignored] = IGNORED
            return _png(Image.fromarray(errors))
        return None

    # -- Training

    def metrics(self) -> list[dict[str, Any]]:
        path = self.run_dir / "metrics.jsonl" if self.run_dir else None
        if path is None or not path.is_file():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line being written: the next poll has it whole
        return records


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(_png(image)).decode()


def create_app(state: ViewState) -> Any:
    """The Flask app serving ``state``."""
    from flask import Flask, abort, jsonify, request, send_from_directory

    app = Flask("fcnseg.view", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = UPLOAD_BYTES

    def png(data: bytes | None) -> Any:
        if data is None:
            abort(404)
        return app.response_class(data, mimetype="image/png")

    @app.get("/")
    def page() -> Any:
        return send_from_directory(STATIC, "index.html")

    @app.get("/static/<name>")
    def static_file(name: str) -> Any:
        return send_from_directory(STATIC, name)  # refuses any name outside the folder

    @app.get("/api/info")
    def info() -> Any:
        return jsonify(state.info())

    @app.post("/api/segment")
    def segment() -> Any:
        upload = request.files.get("image")
        if upload is None:
            return jsonify(error="no image in the request: choose or drop an image file"), 400
        try:
            return jsonify(state.segment(upload.read(), upload.filename or ""))
        except FcnsegError as exc:
            return jsonify(error=str(exc)), 400

    @app.get("/api/segment/<key>/mask.png")
    def mask(key: str) -> Any:
        return png(state.mask_png(key))

    @app.get("/api/inspect")
    def inspect() -> Any:
        if state.dataset is None:
            return jsonify(error="no dataset given: start with --dataset NAME --root DIR"), 404
        return jsonify(state.inspect())

    @app.get("/api/inspect/<int:index>/<kind>.png")
    def inspect_png(index: int, kind: str) -> Any:
        return png(state.inspect_png(index, kind))

    @app.get("/api/metrics")
    def metrics() -> Any:
        return jsonify(state.metrics())

    @app.errorhandler(413)
    def too_large(_: Exception) -> Any:
        return jsonify(error=f"the file is over {UPLOAD_BYTES // 2**20} MB; downscale it"), 413

    @app.errorhandler(404)
    def not_found(_: Exception) -> Any:
        return jsonify(error="not found"), 404

    return app
