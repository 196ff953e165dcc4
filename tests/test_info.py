import math

import numpy as np
import pytest

from dlcore import info


def test_hand_computed_values():
    assert info.entropy([0.5, 0.5], base=2) == pytest.approx(1.0)  # a fair coin
    assert info.entropy([1.0, 0.0]) == 0.0  # 0 log 0 = 0
    assert info.entropy(np.full(8, 1 / 8), base=2) == pytest.approx(3.0)
    assert info.entropy([0.25, 0.75]) == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    )
    assert info.cross_entropy([1, 0], [0.5, 0.5], base=2) == pytest.approx(1.0)
    assert info.kl_divergence([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert info.kl_divergence([0.5, 0.5], [0.25, 0.75], base=2) == pytest.approx(
        0.5 * math.log2(2) + 0.5 * math.log2(0.5 / 0.75)
    )
    assert info.kl_divergence([1.0, 0.0], [0.0, 1.0]) == math.inf
    assert info.cross_entropy([0.5, 0.5], [1.0, 0.0]) == math.inf


def test_identities(rng):
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    np.testing.assert_allclose(info.cross_entropy(p, q), info.entropy(p) + info.kl_divergence(p, q))
    assert info.kl_divergence(p, q) > 0
    np.testing.assert_allclose(info.entropy(p, base=2), info.entropy(p) / math.log(2))
    # rows of a batch, along the last axis
    batch = rng.dirichlet(np.ones(4), size=3)
    np.testing.assert_allclose(info.entropy(batch), [info.entropy(r) for r in batch])


def test_mutual_information_from_a_joint_distribution():
    independent = np.outer([0.3, 0.7], [0.2, 0.5, 0.3])
    assert info.mutual_information(independent) == pytest.approx(0.0, abs=1e-12)
    copy = np.diag([0.5, 0.5])  # Y = X, a fair bit: I = H(X) = 1 bit
    assert info.mutual_information(copy, base=2) == pytest.approx(1.0)
    joint = np.array([[0.1, 0.2], [0.3, 0.4]])
    hx = info.entropy(joint.sum(1))
    assert info.mutual_information(joint) == pytest.approx(
        hx - info.conditional_entropy(joint.T)
    )  # I = H(X) - H(X | Y)
    assert info.joint_entropy(joint) == pytest.approx(info.entropy(joint.reshape(-1)))


def test_mutual_information_from_samples(rng):
    x = rng.integers(0, 4, 20000)
    assert info.mutual_information(x, x, base=2) == pytest.approx(
        info.entropy(np.bincount(x) / len(x), base=2)
    )
    assert info.mutual_information(x, rng.integers(0, 3, 20000)) < 0.002  # independent
    labels = np.array(["a", "b", "a", "b"])  # any hashable labels
    assert info.mutual_information(labels, np.array([1, 2, 1, 2]), base=2) == pytest.approx(1.0)


def test_against_scipy(rng):
    stats = pytest.importorskip("scipy.stats")
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    np.testing.assert_allclose(info.entropy(p), stats.entropy(p))
    np.testing.assert_allclose(info.entropy(p, base=2), stats.entropy(p, base=2))
    np.testing.assert_allclose(info.kl_divergence(p, q), stats.entropy(p, q))


def test_against_scikit_learn(rng):
    skm = pytest.importorskip("sklearn.metrics")
    x, y = rng.integers(0, 5, 500), rng.integers(0, 3, 500)
    y = np.where(rng.random(500) < 0.5, x % 3, y)
    np.testing.assert_allclose(info.mutual_information(x, y), skm.mutual_info_score(x, y))


@pytest.mark.parametrize(
    "p,message",
    [
        ([0.5, 0.6], r"must sum to 1 along axis -1; got sums \[1.1\]"),
        ([1.2, -0.2], "negative probabilities"),
        ([np.nan, 1.0], "NaN or infinite"),
        (0.5, "got a scalar"),
    ],
)
def test_invalid_distributions_are_refused(p, message):
    with pytest.raises(ValueError, match=message):
        info.entropy(p)


def test_other_argument_errors():
    with pytest.raises(ValueError, match=r"p has shape \(2,\) but q has shape \(3,\)"):
        info.kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="base must be positive and not 1"):
        info.entropy([0.5, 0.5], base=1)
    with pytest.raises(ValueError, match="joint distribution must be 2-D"):
        info.mutual_information([0.5, 0.5])
    with pytest.raises(ValueError, match="two 1-D arrays of one length"):
        info.mutual_information([1, 2, 3], [1, 2])
