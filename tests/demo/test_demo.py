"""The demo pipeline on a reduced setting: data, FCN-32s, FCN-8s grown from it, the report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from fcnseg.demo import PRESETS, run_demo
from fcnseg.files.checkpoint import read_checkpoint as read_state

PNG = b"\x89PNG\r\n\x1a\n"


def test_demo_writes_the_report_with_its_own_numbers(tmp_path: Path, capsys) -> None:
    settings = dataclasses.replace(PRESETS["tiny"], backbone="timm:test_resnet", pretrained=False)
    result = run_demo(tmp_path, settings)
    out = capsys.readouterr().out
    assert "[5/5] evaluating" in out

    report = Path(result["report"]).read_text()
    for variant in ("fcn32s_stage1", "fcn32s", "fcn8s"):
        scores = result[variant]
        assert f"{100 * scores['mean_iu']:.1f}" in report
        assert f"{100 * scores['boundary']['mean_iu']:.1f}" in report
        assert scores["images"] == settings.n_val
    beaten = result["fcn8s"]["mean_iu"] > result["fcn32s"]["mean_iu"]
    assert ("FCN-8s beats FCN-32s" in report) == beaten
    assert ("did **not** beat" in report) == (not beaten)

    for name in ("samples.png", "curves.png", "confusion_fcn32s.png", "confusion_fcn8s.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
        assert f"({name})" in report
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["fcn8s"]["mean_iu"] == result["fcn8s"]["mean_iu"]
    assert saved["fcn32s"]["boundary"]["width"] == settings.boundary
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'src="samples.png"' in page
    # FCN-8s grew from the first FCN-32s (§4.2), and so did the FCN-32s it is compared with.
    first = str(tmp_path / "fcn32s_stage1" / "best.safetensors")
    for run in ("fcn8s", "fcn32s"):
        assert read_state(tmp_path / run / "last.safetensors").info["config"]["init_from"] == first


def test_demo_command_ends_with_the_view_command(tmp_path: Path, capsys, monkeypatch) -> None:
    scores = {"mean_iu": 0.5, "boundary": {"width": 3, "mean_iu": 0.4}}
    fake = {"report": str(tmp_path / "report.md"), "fcn32s": scores, "fcn8s": scores}
    monkeypatch.setattr("fcnseg.demo.run_demo", lambda out, settings: fake)
    from fcnseg.cli import main

    assert main(["demo", "--out", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(
        f"fcnseg view {tmp_path / 'fcn8s'} --dataset synthetic --root {tmp_path / 'data'}"
    )
