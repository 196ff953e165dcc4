import numpy as np


def gemm(a, b, trans_a=False, trans_b=False):
    """op(a) @ op(b) in float64."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)
