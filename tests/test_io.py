"""blemore._io: atomic writes with the umask's mode, read per call, never changing the umask;
and every file the main writers produce has that mode."""
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from blemore import _io
from helpers import run_python


@pytest.fixture
def umask():
    """Set a umask for one test and put the old one back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    chosen = []

    def set_(m):
        chosen.append(m)
        os.umask(m)
        return m

    yield set_
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _umask_now() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


@pytest.mark.parametrize("mask", [0o027, 0o002, 0o077])
def test_current_umask_read_per_call(umask, mask):
    umask(mask)
    assert _io.current_umask() == mask
    assert _io.file_mode() == 0o666 & ~mask and _io.folder_mode() == 0o777 & ~mask
    assert _umask_now() == mask  # reading it did not change it


def test_writers_use_the_umask_of_the_call(tmp_path, umask):
    for mask in (0o027, 0o002):  # changed between calls: the second call sees the second umask
        umask(mask)
        d = tmp_path / f"m{mask:o}"
        _io.atomic_write_bytes(d / "a.bin", b"x")
        _io.atomic_write_text(d / "b.txt", "é\n")
        with _io.atomic_path(d / "c.npy") as tmp:
            np.save(tmp, np.arange(3))
        with _io.atomic_folder(d / "folder") as f:
            (f / "inside.txt").write_text("y")
        assert _mode(d / "a.bin") == _mode(d / "b.txt") == _mode(d / "c.npy") == 0o666 & ~mask
        assert _mode(d / "folder") == 0o777 & ~mask and _mode(d / "folder" / "inside.txt") == 0o666 & ~mask
        assert (d / "b.txt").read_text(encoding="utf-8") == "é\n"
        np.testing.assert_array_equal(np.load(d / "c.npy"), np.arange(3))
        assert sorted(p.name for p in d.iterdir()) == ["a.bin", "b.txt", "c.npy", "folder"]  # no temporaries


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.csv"]
    folder = tmp_path / "f"
    with _io.atomic_folder(folder) as f:
        (f / "one").write_text("1")
    with pytest.raises(RuntimeError):
        with _io.atomic_folder(folder) as f:
            (f / "two").write_text("2")
            raise RuntimeError("boom")
    assert [p.name for p in folder.iterdir()] == ["one"]
    with _io.atomic_folder(folder) as f:  # replacing a folder swaps it as a whole
        (f / "three").write_text("3")
    assert [p.name for p in folder.iterdir()] == ["three"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "x.csv"]


def test_import_does_not_touch_the_umask():
    code = ("import os; os.umask(0o037)\n"
            "import blemore, blemore._io, blemore.store, blemore.media, blemore.dataset, blemore.bundle\n"
            "m = os.umask(0); print(oct(m))")
    assert run_python(code) == "0o37"


def _walk_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("mask", [0o027, 0o002])
def test_every_file_blemore_writes_has_the_umask_mode(tmp_path, umask, mask):
    from blemore.config import ExperimentConfig
    from blemore.decode import save_probabilities
    from blemore.experiment import run_experiment
    from blemore.submission import write_predictions, write_submission
    from blemore.synth.features import generate_feature_corpus

    umask(mask)
    # synthetic features: feature store (.npy, config.json, manifest.csv) + train/test metadata CSVs
    corpus = generate_feature_corpus(tmp_path / "corpus", n_train_actors=5, n_test_actors=1, n_train_clips=None,
                                     n_test_clips=None, clips_per_actor=36, dim=4, frames=(3, 5), seed=1)
    cfg = ExperimentConfig(metadata=str(corpus.train_metadata), test_metadata=str(corpus.test_metadata),
                           features=[str(corpus.sources["video"]), str(corpus.sources["audio"])],
                           head="linear", preset="fast", train={"epochs": 2, "batch_size": 64}, threads=1,
                           plots=True, out=str(tmp_path / "run"), model_dir=str(tmp_path / "model"))
    res = run_experiment(cfg, progress=False)  # run folder (json, md, csv, png, submission) + model bundle
    write_predictions(res.submission, tmp_path / "extra" / "sub.json")
    write_submission(res.submission, tmp_path / "extra" / "sub.zip", validate=False)
    save_probabilities(tmp_path / "extra" / "proba.csv", ["a", "b"], np.full((2, 6), 1 / 6))

    files = _walk_files(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    for expected in ("corpus/train_metadata.csv", "corpus/video/config.json", "corpus/video/manifest.csv",
                     "run/results.json", "run/predictions/validation.csv", "run/submission.zip",
                     "run/plots/confusion.png", "model/bundle.json", "extra/proba.csv"):
        assert expected in names
    assert any(n.startswith("model/part0.") for n in names)  # the weights file (its format may change)
    assert any(n.startswith("corpus/audio/") and n.endswith(".npy") for n in names)
    wrong = {p.relative_to(tmp_path).as_posix(): oct(_mode(p)) for p in files if _mode(p) != 0o666 & ~mask}
    assert not wrong, f"files without mode {oct(0o666 & ~mask)}: {wrong}"
    folders = [p for p in tmp_path.rglob("*") if p.is_dir()]
    wrong_dirs = {p.name: oct(_mode(p)) for p in folders if _mode(p) != 0o777 & ~mask}
    assert not wrong_dirs
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    assert _umask_now() == mask
