"""Tensor maths with gradients: elementwise arithmetic, transpose, broadcasting, matmul.

python -m dlcore.examples.tensor_ops
"""

import dlcore
from dlcore import Tensor
from dlcore.examples._common import Stopwatch, parser


def main(argv=None):
    parser(__doc__.splitlines()[0], epochs=0, batch_size=0).parse_args(argv)
    clock = Stopwatch()
    a = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)  # (2, 3)
    b = Tensor([[0.5, -1.0, 2.0]], requires_grad=True)  # (1, 3), broadcasts
    w = Tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)  # (3, 2)

    print("a + b =\n", (a + b).numpy())
    print("a - b =\n", (a - b).numpy())
    print("a * b =\n", (a * b).numpy())
    print("a / b =\n", (a / b).numpy())
    print("a.T =\n", a.T.numpy())
    print("a @ w =\n", (a @ w).numpy())

    # one scalar built from all of them; backward() fills every .grad
    loss = ((a * b + a / 2) @ w).relu().sum() + (a.T**2).mean()
    loss.backward()
    print(f"loss = {float(loss.data):.4f}")
    print("d loss / d a =\n", a.grad)
    print("d loss / d b (summed over the broadcast rows) =\n", b.grad)
    print("d loss / d w =\n", w.grad)
    print(f"done in {clock.seconds * 1e3:.1f} ms on dlcore {dlcore.__version__}")
    return {
        "loss": float(loss.data),
        "grad_a": a.grad,
        "grad_b": b.grad,
        "grad_w": w.grad,
        "a": a.numpy(),
        "b": b.numpy(),
        "w": w.numpy(),
    }


if __name__ == "__main__":
    main()
