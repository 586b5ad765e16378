"""No stale caches and no process-wide side effects: the pooling cache follows the files,
an Experiment leaves torch's thread count as it found it."""
import os

import numpy as np
import pytest

from blemore.features import clear_cache, load_features
from blemore.pooling import Pooling


def _write(folder, values):
    folder.mkdir(exist_ok=True)
    for cid, v in values.items():
        np.save(folder / f"{cid}.npy", np.asarray(v, dtype=np.float32))


def _mean(fs, cid):
    """The pooled mean block of one clip (reference: the 7 statistics start with the mean)."""
    row = fs.clip_ids.index(cid)
    return fs.blocks["feats"][row, :2]


def test_load_features_sees_a_rewritten_file(tmp_path):
    clear_cache()
    folder = tmp_path / "feats"
    ids = ["A1_ang_int1_ver1", "A1_hap_int1_ver1"]
    _write(folder, {ids[0]: np.ones((3, 2)), ids[1]: np.zeros((3, 2))})
    first = load_features([folder], ids, Pooling())
    np.testing.assert_allclose(_mean(first, ids[0]), [1, 1])
    # in place, same shape and size (what a notebook does): new values
    np.save(folder / f"{ids[0]}.npy", np.full((3, 2), 5, dtype=np.float32))
    again = load_features([folder], ids, Pooling())
    np.testing.assert_allclose(_mean(again, ids[0]), [5, 5])
    np.testing.assert_allclose(_mean(again, ids[1]), [0, 0])  # the untouched clip: still right
    # replaced by another file with another length: new values too
    tmp = folder / ".x.npy"
    np.save(tmp, np.full((7, 2), -2, dtype=np.float32))
    os.replace(tmp, folder / f"{ids[1]}.npy")
    third = load_features([folder], ids, Pooling())
    np.testing.assert_allclose(_mean(third, ids[1]), [-2, -2])
    np.testing.assert_allclose(_mean(third, ids[0]), [5, 5])


def test_unchanged_files_are_pooled_once(tmp_path, monkeypatch):
    clear_cache()
    folder = tmp_path / "feats"
    ids = ["A1_ang_int1_ver1", "A1_hap_int1_ver1"]
    _write(folder, {ids[0]: np.ones((3, 2)), ids[1]: np.zeros((3, 2))})
    calls = []
    real = Pooling.apply
    monkeypatch.setattr(Pooling, "apply", lambda self, x: calls.append(1) or real(self, x))
    load_features([folder], ids, Pooling())
    load_features([folder], ids, Pooling())
    assert len(calls) == 2  # the second call came from the cache


@pytest.mark.slow
def test_experiment_restores_torch_threads(tmp_path, monkeypatch):
    import torch

    from blemore import experiment
    from blemore.config import ExperimentConfig
    from blemore.synth.features import generate_feature_corpus

    corpus = generate_feature_corpus(tmp_path / "c", n_train_actors=5, n_test_actors=0, n_train_clips=None,
                                     n_test_clips=None, clips_per_actor=36, dim=4, frames=(3, 5), seed=2)
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    cfg = ExperimentConfig(metadata=str(corpus.train_metadata), features=[str(corpus.sources["video"])],
                           head="linear", preset="fast", train={"epochs": 2, "batch_size": 64},
                           threads=wanted, plots=False)
    seen = []
    real_create = experiment.create_head

    def spy_create(*a, **k):  # every head the runner trains records the thread count it ran with
        head = real_create(*a, **k)
        real_fit = head.fit

        def fit(*fa, **fk):
            seen.append(torch.get_num_threads())
            return real_fit(*fa, **fk)
        head.fit = fit
        return head

    monkeypatch.setattr(experiment, "create_head", spy_create)
    exp = experiment.Experiment(cfg, progress=False)
    assert torch.get_num_threads() == before  # constructing sets nothing
    exp.cross_validate()
    assert torch.get_num_threads() == before
    experiment.run_experiment(cfg, progress=False)
    assert torch.get_num_threads() == before  # running restores it
    assert len(seen) >= 10 and set(seen) == {wanted}  # and the work ran with the configured count
