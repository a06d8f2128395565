"""Engines: OpenVINO beside PyTorch and ONNX Runtime, and ``backend="auto"`` measuring them
all on the first image, keeping those that agree with eager fp32, taking the fastest, and
remembering the choice for the next run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.inference import backends
from fcnseg.inference import precision as calibration
from fcnseg.inference.backends import installed_engines

pytest.importorskip("onnxruntime", reason="pip install 'fcnseg[onnx]'")


@pytest.fixture
def model() -> fcnseg.FCN:
    torch.manual_seed(0)
    net = fcnseg.fcn8s(num_classes=4, backbone="timm:test_resnet").eval()
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    return net


@pytest.fixture(autouse=True)
def unpinned(monkeypatch) -> None:
    monkeypatch.delenv("FCNSEG_BACKEND", raising=False)


IMAGE = torch.randint(0, 256, (3, 45, 61), generator=torch.Generator().manual_seed(1)).byte()


def test_openvino_gives_pytorchs_scores(model) -> None:
    pytest.importorskip("openvino", reason="pip install 'fcnseg[openvino]'")
    ours = fcnseg.Predictor(model, backend="openvino", precision="fp32")
    theirs = fcnseg.Predictor(model, backend="torch", precision="fp32")
    probs, expected = ours.probabilities(IMAGE), theirs.probabilities(IMAGE)
    # Different kernels sum in different orders: float32 rounding, not different answers.
    assert torch.allclose(probs, expected, atol=1e-4)
    assert (ours(IMAGE) == theirs(IMAGE)).float().mean() >= 0.999
    assert ours.engine == "openvino" and ours.precision == "fp32"


def test_auto_measures_each_engine_and_keeps_the_fastest_that_agrees(model) -> None:
    predictor = fcnseg.Predictor(model)
    assert predictor.engine == "auto"
    mask = predictor(IMAGE)
    measured = predictor.calibration
    expected = {"fp32"} | {f"{e}:fp32" for e in installed_engines() if e != "torch"}
    assert expected <= set(measured.agreement)
    kept = {c for c, a in measured.agreement.items() if a >= calibration.AGREEMENT}
    assert set(measured.seconds) == kept
    assert measured.chosen == min(measured.seconds, key=measured.seconds.get)
    engine = measured.chosen.split(":")[0] if ":" in measured.chosen else "torch"
    assert predictor.engine == engine
    reference = fcnseg.Predictor(model, backend="torch", precision="fp32")(IMAGE)
    assert (mask == reference).float().mean() >= calibration.AGREEMENT
    assert measured.describe().startswith(f"engine: {measured.chosen.replace(':', ' ')}")
    assert measured.cost > 0 and not measured.cached


def test_the_choice_is_remembered_for_the_same_model_machine_and_size(model, monkeypatch) -> None:
    first = fcnseg.Predictor(model)
    first(IMAGE)

    def measure_again(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(calibration, "calibrate", measure_again)
    second = fcnseg.Predictor(model)
    second(IMAGE)
    assert second.calibration.cached and second.calibration.chosen == first.calibration.chosen
    assert "from the calibration cache" in second.calibration.describe()
    other = fcnseg.Predictor(model)  # another size: measured anew
    with pytest.raises(AssertionError, match="calibrated again"):
        other(IMAGE[:, :40, :50])


def test_without_the_optional_engines_auto_chooses_among_the_rest(model, monkeypatch) -> None:
    monkeypatch.setattr("fcnseg.inference.backends.installed_engines", lambda: ("torch",))
    predictor = fcnseg.Predictor(model)
    predictor(IMAGE)
    assert all(":" not in c or c.startswith("torch:") for c in predictor.calibration.agreement)
    assert predictor.engine == "torch"


def test_predict_prints_the_choice_once(model, tmp_path, capsys) -> None:
    fcnseg.save(model, tmp_path / "m.safetensors")
    for i in range(3):
        Image.fromarray(np.full((30, 40, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    paths = [str(tmp_path / f"{i}.png") for i in range(3)]
    code = main(["predict", str(tmp_path / "m.safetensors"), *paths, "--out", str(tmp_path / "o")])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err.count("engine: ") == 1
    assert "wrote 3 masks" in captured.out


def test_a_second_run_opens_the_exported_graph_instead_of_exporting_again(
    model, monkeypatch, tmp_path
) -> None:
    # The real export, shared with the tests above through the session's cache; here each
    # further export is a copy of it, counted.
    made = Path(backends.exported(model, torch.device("cpu")).path).read_bytes()
    exports = []

    def export(model, path, **kwargs) -> list:
        exports.append(path)
        Path(path).write_bytes(made)
        return []

    monkeypatch.setattr("fcnseg.files.onnx.export_onnx", export)
    monkeypatch.setenv("FCNSEG_CACHE_DIR", str(tmp_path))
    expected = fcnseg.Predictor(model, backend="onnxruntime", precision="fp32")(IMAGE)
    (graph,) = (tmp_path / "onnx").glob("*.onnx")
    assert exports == [graph]
    second = fcnseg.Predictor(model, backend="onnxruntime", precision="fp32")
    assert torch.equal(second(IMAGE), expected) and len(exports) == 1

    graph.write_bytes(b"not a graph")  # a damaged cache costs an export, not the prediction
    assert torch.equal(fcnseg.Predictor(model, backend="onnxruntime")(IMAGE), expected)
    assert len(exports) == 2 and graph.read_bytes() == made

    monkeypatch.setattr(backends, "GRAPHS_KEPT", 2)
    for name in ("a", "b", "c"):
        monkeypatch.setattr(backends, "_graph_key", lambda m, name=name: name)
        fcnseg.Predictor(model, backend="onnxruntime")
    assert sorted(p.stem for p in (tmp_path / "onnx").iterdir()) == ["b", "c"]


def test_what_the_first_image_waits_for_is_said_before_it_starts(
    model, monkeypatch, tmp_path
) -> None:
    made = Path(backends.exported(model, torch.device("cpu")).path).read_bytes()
    monkeypatch.setattr(
        "fcnseg.files.onnx.export_onnx", lambda model, path, **kw: Path(path).write_bytes(made)
    )
    monkeypatch.setenv("FCNSEG_CACHE_DIR", str(tmp_path))  # nothing exported or measured yet
    lines: list[str] = []
    fcnseg.Predictor(model, say=lines.append)(IMAGE)
    exporting = "; first exporting the model to ONNX for ONNX Runtime and OpenVINO"
    assert lines[0].startswith("choosing the engine and precision on the first image")
    assert (exporting in lines[0]) == (len(installed_engines()) > 1)
    assert lines[1].startswith("engine: ") and len(lines) == 2
    lines.clear()  # another size: measured again, the graph kept
    fcnseg.Predictor(model, say=lines.append)(IMAGE[:, :40, :50])
    assert lines[0].startswith("choosing the engine") and exporting not in lines[0]
    lines.clear()  # the same size again: nothing to measure, one line
    fcnseg.Predictor(model, say=lines.append)(IMAGE)
    assert len(lines) == 1 and "from the calibration cache" in lines[0]


def test_the_graph_is_named_by_the_weights(model) -> None:
    key = backends._graph_key(model)
    assert backends._graph_key(model) == key
    with torch.no_grad():
        next(model.parameters())[0].add_(1e-3)
    assert backends._graph_key(model) != key
