import numpy as np
import pytest

import dlcore
from dlcore import layers, models, optimizers
from dlcore.model_selection import KFold, cross_val_score


@pytest.mark.parametrize(
    "n,k,shuffle", [(10, 5, False), (11, 3, True), (7, 7, True), (100, 4, True)]
)
def test_every_sample_is_validated_exactly_once(n, k, shuffle):
    seen = []
    folds = list(KFold(k, shuffle=shuffle, random_state=1).split(np.zeros(n)))
    assert len(folds) == k
    for train, val in folds:
        assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == n
        seen.extend(val)
    assert sorted(seen) == list(range(n))
    assert sorted(len(v) for _, v in folds) == sorted([n // k + (i < n % k) for i in range(k)])


def test_matches_scikit_learn_folds():
    skms = pytest.importorskip("sklearn.model_selection")
    ours = [v.tolist() for _, v in KFold(4).split(np.zeros(10))]
    theirs = [v.tolist() for _, v in skms.KFold(4).split(np.zeros(10))]
    assert ours == theirs


def test_cross_val_score_builds_a_fresh_model_per_fold():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    x = (rng.standard_normal((300, 2)) + y[:, None] * 2.5).astype(np.float32)
    built = []

    def build():
        dlcore.set_random_seed(len(built))
        m = models.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(2,))])
        m.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
        built.append(m)
        return m

    scores = cross_val_score(build, x, y, k=3, epochs=5, batch_size=16)
    assert scores.shape == (3,) and (scores > 0.85).all()
    assert len({id(m) for m in built}) == 3
    losses = cross_val_score(build, x, y, k=3, epochs=1, scoring="loss")
    assert (losses > 0).all()
    with pytest.raises(ValueError, match="n_splits must be an int >= 2"):
        KFold(1)
    with pytest.raises(ValueError, match="cannot split 2 samples into 3 folds"):
        list(KFold(3).split(np.zeros(2)))
