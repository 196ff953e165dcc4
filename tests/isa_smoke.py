"""Smoke test of an installed dlcore on the CPU it runs on: import, one call of each kernel
family against the NumPy references, a few training steps. Small enough to run under an
emulated CPU (qemu-x86_64 -cpu Westmere, which has no AVX: .ci/run, tests/test_isa.py).

    python tests/isa_smoke.py                  # any level
    python tests/isa_smoke.py --not-level avx2 # and fail if that level was chosen

Prints one line per check and "smoke: N passed, 0 failed" at the end; exits 1 on a failure.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dlcore
from dlcore import layers, losses, models, ops
from reference import conv, gemm, lstm, pool


def close(got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-12))
    assert err <= tol, f"relative error {err:.3g} > {tol}"


def check_gemm(rng):
    a, b = rng.standard_normal((37, 29), np.float32), rng.standard_normal((37, 19), np.float32)
    close(ops.gemm(a, b, trans_a=True), gemm.gemm(a, b, trans_a=True), 1e-5)


def check_conv(rng):
    x = rng.standard_normal((2, 9, 8, 5), np.float32)
    k = rng.standard_normal((3, 3, 5, 32), np.float32)  # 32 channels: the Winograd plan
    bias = rng.standard_normal(32, np.float32)
    pad = ((1, 1), (1, 1))
    y = ops.conv2d_forward(x, k, bias, padding=pad)
    close(y, conv.conv2d(x, k, bias, padding=pad), 1e-4)
    dy = rng.standard_normal(y.shape, np.float32)
    got = ops.conv2d_backward(dy, x, k, padding=pad)
    for g, w in zip(got, conv.conv2d_grads(dy, x, k, padding=pad)):
        close(g, w, 1e-4)


def check_pool(rng):
    x = rng.standard_normal((2, 7, 6, 3), np.float32)
    y, argmax = ops.maxpool2d_forward(x, pool_size=2)
    ry, rargmax = pool.maxpool2d(x)
    close(y, ry, 1e-7)
    assert np.array_equal(argmax, rargmax), "argmax differs"
    dy = rng.standard_normal(y.shape, np.float32)
    close(
        ops.maxpool2d_backward(dy, argmax, x.shape),
        pool.maxpool2d_backward(dy, argmax, x.shape),
        1e-7,
    )


def check_lstm(rng):
    n, t, i, u = 3, 5, 4, 6
    x = rng.standard_normal((n, t, i), np.float32)
    kern = 0.3 * rng.standard_normal((i, 4 * u), np.float32)
    rec = 0.3 * rng.standard_normal((u, 4 * u), np.float32)
    bias = 0.1 * rng.standard_normal(4 * u, np.float32)
    y, h, c, cache = ops.lstm_forward(x, None, None, kern, rec, bias)
    ry, rh, rc, saved = lstm.lstm_forward(x, None, None, kern, rec, bias)
    for g, w in ((y, ry), (h, rh), (c, rc)):
        close(g, w, 1e-5)
    dy = rng.standard_normal(y.shape, np.float32)
    got = ops.lstm_backward(dy, None, None, cache)
    for g, w in zip(got, lstm.lstm_backward(dy, None, None, saved)):
        close(g, w, 1e-4)


def check_eltwise_and_optim(rng):
    x = rng.standard_normal(1000, np.float32)
    close(ops.relu(x), np.maximum(x, 0), 0)
    p, g = rng.standard_normal(100, np.float32), rng.standard_normal(100, np.float32)
    want = p - 0.1 * g
    ops.sgd_update(p, g, lr=0.1)
    close(p, want, 1e-6)


def check_training(rng):
    x = rng.standard_normal((64, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].sum(axis=(1, 2, 3)) > x[:, 4:].sum(axis=(1, 2, 3))).astype(np.int64)
    dlcore.set_random_seed(0)
    model = models.Sequential(
        [
            layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0], f"losses {history}"
    seq = rng.standard_normal((32, 6, 3)).astype(np.float32)
    target = seq.sum(axis=(1, 2))[:, None] / 6
    rnn = models.Sequential([layers.LSTM(8, input_shape=(6, 3)), layers.Dense(1)])
    rnn.compile(optimizer="adam", loss="mse")
    history = rnn.fit(seq, target, epochs=4, batch_size=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0], f"losses {history}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--not-level", action="append", default=[], help="fail if this level runs")
    args = p.parse_args()
    info = dlcore.build_info()
    print(
        f"smoke: dlcore {info['version']}, level {info['isa_level']} ({info['isa_chosen']}), "
        f"levels built {', '.join(info['isa_levels_built'])}"
    )
    checks = [
        check_gemm,
        check_conv,
        check_pool,
        check_lstm,
        check_eltwise_and_optim,
        check_training,
    ]
    failed = 0
    if info["isa_level"] in args.not_level:
        print(f"smoke: FAILED level: {info['isa_level']} must not run on this CPU")
        failed += 1
    for check in checks:
        try:
            check(np.random.default_rng(0))
            print(f"smoke: {check.__name__} ok")
        except Exception as e:  # report every family, then fail
            failed += 1
            print(f"smoke: {check.__name__} FAILED: {type(e).__name__}: {e}")
    print(f"smoke: {len(checks) + bool(args.not_level) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
