"""fcnseg view's endpoints, without a browser (Flask's test client): segment, inspect, the
training curves, and bad uploads answered with a message, never a server error."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("flask", reason="pip install 'fcnseg[view]'")

import fcnseg  # noqa: E402
from fcnseg.cli import main  # noqa: E402
from fcnseg.data import build_dataset  # noqa: E402
from fcnseg.view import ViewState, create_app  # noqa: E402
from fcnseg.view.server import UPLOAD_BYTES  # noqa: E402


@pytest.fixture(scope="module")
def client(run):
    run_dir, data = run
    state = ViewState.open(run_dir, build_dataset("synthetic", data, "val"))
    return create_app(state).test_client()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_info_names_the_model_and_its_pages(client, run) -> None:
    info = client.get("/api/info").get_json()
    model = fcnseg.load(run[0] / "best.safetensors")
    assert info["model"]["classes"] == list(model.meta.classes)
    assert len(info["model"]["palette"]) == model.meta.num_classes
    assert info["inspect"] is True and info["training"] is True
    page = client.get("/")
    assert page.status_code == 200 and b'id="overlay"' in page.data


def test_segment_returns_the_predictors_class_map(client, run) -> None:
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    answer = client.post("/api/segment", data={"image": (io.BytesIO(png_bytes(image)), "a.png")})
    assert answer.status_code == 200
    result = answer.get_json()
    assert (result["width"], result["height"]) == (53, 37)
    labels = np.array(Image.open(io.BytesIO(_data_url_bytes(result["labels"]))))
    expected = fcnseg.Predictor(fcnseg.load(run[0] / "best.safetensors"))(image).numpy()
    assert np.array_equal(labels, expected)
    assert sum(result["shares"]) == pytest.approx(1.0)
    download = client.get(f"/api/segment/{result['id']}/mask.png")
    mask = Image.open(io.BytesIO(download.data))
    assert mask.mode == "P" and np.array_equal(np.array(mask), expected)


def _data_url_bytes(url: str) -> bytes:
    import base64

    return base64.b64decode(url.split(",", 1)[1])


def _bomb() -> bytes:
    """A valid PNG header claiming 10000×10000 pixels and no data: refused before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("payload", "name", "status", "message"),
    [
        (b"not an image at all", "notes.txt", 400, "notes.txt"),
        (_bomb(), "bomb.png", 400, "over the limit"),
        (b"\0" * (UPLOAD_BYTES + 1), "huge.png", 413, "downscale it"),
    ],
)
def test_bad_uploads_get_a_message(client, payload, name, status, message) -> None:
    answer = client.post("/api/segment", data={"image": (io.BytesIO(payload), name)})
    assert answer.status_code == status
    assert message in answer.get_json()["error"]


def test_no_image_and_unknown_results_are_answered(client) -> None:
    answer = client.post("/api/segment", data={})
    assert answer.status_code == 400 and "choose or drop" in answer.get_json()["error"]
    assert client.get("/api/segment/nope/mask.png").status_code == 404


def test_inspect_sorts_worst_first_and_draws_each_image(client, run) -> None:
    result = client.get("/api/inspect").get_json()
    scores = [r["mean_iu"] for r in result["images"]]
    assert len(scores) == 3 and scores == sorted(scores)
    matrix = np.array(result["confusion"])
    dataset = build_dataset("synthetic", run[1], "val")
    counted = sum(int((m.numpy() != dataset.ignore_index).sum()) for _, m in dataset)
    assert matrix.sum() == counted
    worst = result["images"][0]["index"]
    image, _ = dataset[worst]
    for kind in ("image", "truth", "prediction", "errors"):
        answer = client.get(f"/api/inspect/{worst}/{kind}.png")
        assert answer.status_code == 200 and answer.mimetype == "image/png"
        assert Image.open(io.BytesIO(answer.data)).size == (image.shape[2], image.shape[1])
    assert client.get("/api/inspect/99/image.png").status_code == 404
    assert client.get(f"/api/inspect/{worst}/secrets.png").status_code == 404


def test_metrics_and_nothing_outside_the_given_folders(client) -> None:
    assert [r["epoch"] for r in client.get("/api/metrics").get_json()] == [1, 2, 3]
    for path in ("/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/__init__.py"):
        assert client.get(path).status_code == 404


def test_view_without_a_dataset_has_no_inspect(run) -> None:
    client = create_app(ViewState.open(run[0] / "best.safetensors")).test_client()
    info = client.get("/api/info").get_json()
    assert info["inspect"] is False and info["training"] is True
    assert client.get("/api/inspect").status_code == 404


def test_cli_mistakes_are_one_line(run, capsys) -> None:
    assert main(["view", str(run[0]), "--dataset", "synthetic"]) == 2
    assert "--dataset and --root go together" in capsys.readouterr().err
    assert main(["view", str(run[0] / "nothing")]) == 2
    assert "no such model file" in capsys.readouterr().err
