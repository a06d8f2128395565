"""Outputs are written whole or not at all, and one that cannot be written is one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fcnseg.errors import FcnsegError
from fcnseg.files import atomic_write, check_writable


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    target.write_text("old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(FcnsegError, match=r"scores\.json: cannot write: the disk is full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


@pytest.mark.parametrize(
    ("where", "folder", "reason"),
    [
        ("file/x.json", False, "a part of the path is a file, not a folder"),
        ("file/deeper/still/x.json", False, "a part of the path is a file, not a folder"),
        ("folder", False, "it is a folder; give a file name"),
        ("file", True, "a part of the path is a file, not a folder"),
    ],
)
def test_an_unwritable_path_is_named_with_its_flag(
    tmp_path: Path, where: str, folder: bool, reason: str
) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FcnsegError) as caught:
        check_writable(tmp_path / where, flag="--json", folder=folder)
    assert str(caught.value).startswith(f"--json {tmp_path / where}: cannot write: {reason}")


def test_writable_paths_pass_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("x")
    (tmp_path / "out").mkdir()
    check_writable(tmp_path / "old.json")  # replaced in place
    check_writable(tmp_path / "new" / "deeper" / "x.json")  # its folders made when written
    check_writable(tmp_path / "out", folder=True)
    check_writable(tmp_path / "masks" / "run1", folder=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json", "out"]


@pytest.mark.parametrize(
    ("read_only", "reason"),
    [(True, "the file system is read-only"), (False, "permission denied")],
)
def test_a_folder_one_may_not_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool, reason: str
) -> None:
    # The tests may run as root, whom access() never refuses: the answers are the system's.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    flags = os.ST_RDONLY if read_only else 0
    monkeypatch.setattr(os, "statvfs", lambda path: os.statvfs_result((0,) * 8 + (flags, 0)))
    with pytest.raises(FcnsegError, match=f"x.json: cannot write: {reason}"):
        check_writable(tmp_path / "x.json")
