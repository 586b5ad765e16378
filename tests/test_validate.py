"""blemore.validate: typed settings against dataclass field types, feature-array checks (issue 11)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from click.testing import CliRunner

from blemore.cli import cli
from blemore.errors import BlemoreError
from blemore.extract import build_extractors
from blemore.validate import SettingsError, array_problem, coerce_settings, nonfinite_rows


@dataclass
class _Cfg:
    flag: bool = True
    n: int = 1
    x: float = 0.5
    name: str = "a"
    fps: float | None = None
    dev: str | None = None


def test_settings_are_converted_to_the_declared_types():
    got = coerce_settings(_Cfg, {"flag": "No", "n": "12", "x": "2.5", "name": "123", "fps": "none", "dev": "cuda:0"})
    assert got == {"flag": False, "n": 12, "x": 2.5, "name": "123", "fps": None, "dev": "cuda:0"}
    assert coerce_settings(_Cfg, {"flag": True, "n": 3, "x": 1}) == {"flag": True, "n": 3, "x": 1.0}
    with pytest.raises(SettingsError) as e:
        coerce_settings(_Cfg, {"flag": "maybe", "n": "2.5", "x": "nan", "nope": 1, "name": 5}, owner="ex")
    msg = str(e.value)
    for part in ("ex.flag='maybe': expected true or false", "ex.n='2.5': expected a whole number",
                 "ex.x='nan': expected a finite number", "ex.nope: unknown setting", "ex.name='5': expected text"):
        assert part in msg, msg
    with pytest.raises(SettingsError):
        coerce_settings(_Cfg, {"n": True})
    with pytest.raises(SettingsError):
        coerce_settings(_Cfg, {"n": "\u0661\u0662"})  # Arabic-Indic digits are not a number here


def test_face_mesh_landmarks_maybe_is_rejected(tmp_path):
    """issue 11: --set face-mesh.landmarks=maybe was accepted and stored as a string."""
    with pytest.raises(BlemoreError, match=r"face-mesh\.landmarks='maybe': expected true or false"):
        build_extractors(["face-mesh"], settings={"face-mesh": {"landmarks": "maybe"}})
    (e,) = build_extractors(["face-mesh"], settings={"face-mesh": {"landmarks": "false"}})
    assert e.config.landmarks is False
    res = CliRunner().invoke(cli, ["extract", str(tmp_path), "--out", str(tmp_path / "S"), "-e", "face-mesh",
                                   "--set", "face-mesh.landmarks=maybe"])
    assert res.exit_code == 2 and "face-mesh.landmarks='maybe'" in res.output, res.output


@pytest.mark.parametrize("arr, why", [
    (np.zeros((0, 4)), "zero frames"), (np.zeros((3, 0)), "zero features"), (np.zeros((2, 2, 2)), "3-D"),
    (np.array([{"a": 1}], dtype=object), "object array"), (np.array(["a"]), "not a real number"),
    (np.zeros(3, dtype=complex), "not a real number"), (np.float32(1.0), "not an array"),
])
def test_array_problems(arr, why):
    assert why in (array_problem(arr) or "")


def test_array_ok_and_nonfinite_rows():
    assert array_problem(np.zeros((3, 4), dtype=np.float16)) is None and array_problem(np.zeros(4)) is None
    X = np.array([[1.0, np.nan], [np.nan, np.nan], [np.inf, -np.inf], [0.0, 0.0]])
    assert nonfinite_rows(X).tolist() == [1, 2]


def test_empty_input_folder_is_an_error(tmp_path):
    """issue 11: an empty input folder exited 0 although --help says non-zero when nothing could run."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no media here")
    r = CliRunner().invoke(cli, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "S"), "-e", "egemaps", "-q"])
    assert r.exit_code == 2 and "no media files found" in r.output and str(tmp_path / "in") in r.output, r.output
    assert not (tmp_path / "S").exists()


def test_out_under_a_file_or_read_only_is_one_clear_message(tmp_path, monkeypatch):
    """issue 11: --out under a file or in a read-only place gave tracebacks."""
    import errno
    import os

    a_file = tmp_path / "afile"
    a_file.write_text("x")
    args = ["synth", "features", str(a_file / "corpus"), "--clips", "72", "--test-clips", "36", "--actors", "2",
            "--test-actors", "1", "--folds", "2", "--dim", "2"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and f"{a_file} is a file, not a folder" in r.output, r.output

    real_mkdir = os.mkdir

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(os, "mkdir", read_only)
    args[2] = str(tmp_path / "ro" / "corpus")
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "Read-only file system" in r.output and "Traceback" not in r.output, r.output
