"""dlcore.utils against Keras' keras.utils: pad_sequences."""

import numpy as np
import pytest

from dlcore import utils

SEQS = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9]]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 3, 1])
def test_pad_sequences_matches_keras(padding, truncating, maxlen):
    keras = pytest.importorskip("keras")
    kw = dict(maxlen=maxlen, padding=padding, truncating=truncating, value=-1)
    got = utils.pad_sequences(SEQS, **kw)
    expected = keras.utils.pad_sequences(SEQS, **kw)
    assert got.dtype == expected.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


def test_pad_sequences_keeps_item_shapes_and_dtype():
    seqs = [np.ones((2, 3)), np.zeros((4, 3))]
    out = utils.pad_sequences(seqs, maxlen=3, dtype="float32", padding="post")
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], [[1, 1, 1], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(out[1], np.zeros((3, 3)))  # the last three of four
    assert utils.pad_sequences([]).shape == (0, 0)
    # maxlen 0 keeps nothing (Keras' own raises a broadcasting error with 'pre')
    assert utils.pad_sequences(SEQS, maxlen=0).shape == (4, 0)


def test_pad_sequences_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post'"):
        utils.pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError, match="truncating must be 'pre' or 'post'"):
        utils.pad_sequences(SEQS, truncating=1)
    with pytest.raises(ValueError, match="maxlen must be an integer"):
        utils.pad_sequences(SEQS, maxlen=-2)
    with pytest.raises(ValueError, match=r"sequences\[1\] is a scalar"):
        utils.pad_sequences([[1], 2])
    with pytest.raises(ValueError, match=r"sequences\[1\] has items of shape \(2,\)"):
        utils.pad_sequences([np.ones((2, 3)), np.ones((2, 2))])
    with pytest.raises(TypeError, match="must be a list of sequences"):
        utils.pad_sequences(5)
