import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small models train faster and reproducibly so on a
    shared machine); the previous count is restored. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _compositional(n: int, dim: int = 24, noise: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, targets)``: ``n`` rows whose mean is the salience-weighted sum of fixed emotion
    prototypes (blends mix two prototypes 70/30 or 50/50), plus Gaussian noise; targets drawn
    uniformly from the 36 BLEMORE targets."""
    from blemore.labels import EMOTIONS, N_TARGETS, TARGET_SOFT

    rng = np.random.default_rng(seed)
    proto = np.random.default_rng(99).standard_normal((len(EMOTIONS), dim)) * 2.0
    t = rng.integers(0, N_TARGETS, n)
    X = TARGET_SOFT[t] @ proto + noise * rng.standard_normal((n, dim))
    return X.astype(np.float32), t


@pytest.fixture
def compositional():
    """The compositional synthetic table (see :func:`_compositional`), as a function of
    ``(n, dim=24, noise=0.5, seed=0)``."""
    return _compositional


# -- Hypothesis (tests/test_fuzz_*.py): "ci" (default, bounded: `make test` stays fast) and
# "fuzz" (`make fuzz`, HYPOTHESIS_PROFILE=fuzz: many more examples, failures kept in .hypothesis/)
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=40, deadline=None, database=None, derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    settings.register_profile("fuzz", max_examples=2000, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    pass
