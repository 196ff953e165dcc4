"""predict's inference plan (Sequential._inference_plan): the layers' kernels run one
after the other on arrays. Its outputs must be the layer calls' own, bit for bit, and
any model or input it cannot serve must take the usual path."""

import threading

import numpy as np
import pytest

import dlcore
from dlcore import layers, models, ops
from dlcore.tensor import is_grad_enabled, no_grad


def layer_path(model, x):
    """The outputs of the layers called one by one, as before the plan."""
    with no_grad():
        return model(x, training=False).data


def cnn(dtype="float32"):
    return models.Sequential(
        [
            layers.Conv2D(6, 3, activation="relu", input_shape=(12, 10, 3), dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.MaxPooling2D(2, padding="same", dtype=dtype),
            layers.Conv2D(
                5, (3, 2), strides=(2, 1), padding="same", activation="tanh", dtype=dtype
            ),
            layers.AveragePooling2D((2, 3), strides=1, padding="same", dtype=dtype),
            layers.Conv2D(4, 1, use_bias=False, dtype=dtype),
            layers.Dropout(0.5, dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dense(7, activation="relu", dtype=dtype),
            layers.Activation("elu", dtype=dtype),
            models.Sequential([layers.Dense(5, dtype=dtype), layers.Dense(3, dtype=dtype)]),
            layers.Dense(4, activation="softmax", dtype=dtype),
        ]
    )


def moved_statistics(model, rng):
    """BatchNormalization with statistics other than its initial 0 and 1."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.5, b + 0.1, rng.standard_normal(m.shape).astype(m.dtype),
                               (1 + rng.random(v.shape)).astype(v.dtype)])  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 3, 7])
@pytest.mark.parametrize("build", ["sequential", "functional"])
def test_predict_has_the_layer_calls_values_bit_for_bit(rng, dtype, batch, build):
    model = cnn(dtype) if build == "sequential" else functional_cnn(dtype)
    moved_statistics(model, rng)
    x = rng.standard_normal((batch, 12, 10, 3)).astype(dtype)
    assert model._inference_plan_for(x) is not None  # every layer here has a step
    got = model.predict(x, verbose=0)
    assert got.dtype == np.dtype(dtype) and got.shape == (batch, 4)
    np.testing.assert_array_equal(got, layer_path(model, x))
    np.testing.assert_array_equal(model.predict_on_batch(x), got)
    # in batches of 2: each batch's values are its layer calls' (a product's rounding
    # may depend on how many rows it has, so the whole batch is not the reference)
    parts = [layer_path(model, x[i : i + 2]) for i in range(0, batch, 2)]
    np.testing.assert_array_equal(model.predict(x, batch_size=2, verbose=0), np.concatenate(parts))


def test_inputs_of_another_dtype_are_cast_as_the_layers_cast_them(rng):
    model = cnn()
    images = rng.integers(0, 255, (3, 12, 10, 3), dtype=np.uint8)
    got = model.predict(images, verbose=0)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, layer_path(model, images))
    wide = rng.standard_normal((2, 12, 10, 3))  # float64 into a float32 model
    np.testing.assert_array_equal(model.predict(wide, verbose=0), layer_path(model, wide))


def test_weights_set_after_the_plan_was_made_are_used(rng):
    model = cnn()
    x = rng.standard_normal((2, 12, 10, 3)).astype(np.float32)
    before = model.predict(x, verbose=0)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    after = model.predict(x, verbose=0)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, layer_path(model, x))


def test_the_plan_follows_added_and_removed_layers(rng):
    model = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    x = rng.standard_normal((5, 3)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (5, 2)
    model.pop()
    assert model.predict(x, verbose=0).shape == (5, 4)
    model.add(layers.Dense(6, activation="sigmoid"))
    got = model.predict(x, verbose=0)
    assert got.shape == (5, 6)
    np.testing.assert_array_equal(got, layer_path(model, x))


class Doubled(layers.Dense):
    """A subclass with its own call: the plan must not stand in for it."""

    def call(self, inputs, training=False):
        return super().call(inputs, training) * 2.0


class Recording(layers.Layer):
    def call(self, inputs):
        return inputs + 1.0


def test_layers_without_a_step_send_the_model_the_usual_way(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    for odd in (Doubled(2), Recording(), layers.GaussianNoise(0.1)):
        model = models.Sequential([layers.Dense(2, input_shape=(3,)), odd])
        assert model._inference_plan() is None
        np.testing.assert_array_equal(model.predict(x, verbose=0), layer_path(model, x))
    doubled = models.Sequential([layers.Dense(2, input_shape=(3,)), Doubled(2)])
    plain = models.Sequential([layers.Dense(2, input_shape=(3,)), layers.Dense(2)])
    plain.set_weights(doubled.get_weights())
    np.testing.assert_array_equal(doubled.predict(x, verbose=0), 2 * plain.predict(x, verbose=0))
    # channels not last: the layer's call moves them, the plan has no step for that
    model = models.Sequential([layers.BatchNormalization(axis=1, input_shape=(3, 4))])
    assert model._inference_plan() is None


def test_inputs_the_plan_cannot_serve_take_the_usual_path(rng):
    model = models.Sequential([layers.Dense(3, activation="relu")])  # no input shape
    x = rng.standard_normal((2, 5)).astype(np.float32)
    assert model._inference_plan() is None  # nothing built: no plan, and none kept
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer_path(model, x))
    assert model._inference_plan_for(x) is not None  # built by that call, for (None, 5)
    assert model._inference_plan_for(x[:, :4]) is None  # another shape: refused below
    with pytest.raises(ValueError, match=r"expected inputs of shape \(None, 5\)"):
        model.predict(x[:, :4], verbose=0)
    with pytest.raises(TypeError, match="must hold numbers"):
        model.predict(np.array([["a"] * 5]), verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        model.predict(np.zeros((0, 5), np.float32), verbose=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.predict(x, batch_size=0, verbose=0)


def test_predict_records_no_graph_and_leaves_grad_mode_alone(rng):
    model = cnn()
    x = rng.standard_normal((2, 12, 10, 3)).astype(np.float32)
    with dlcore.profile(print_table=False) as prof:
        model.predict(x, verbose=0)
    assert prof.stats["conv2d_forward"][0] == 3 and "maxpool2d_forward" in prof.stats
    assert is_grad_enabled()
    with no_grad():
        model.predict(x, verbose=0)
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_no_grad_nests_reenters_and_decorates():
    mode = no_grad()
    with mode:
        assert not is_grad_enabled()
        with dlcore.enable_grad():
            assert is_grad_enabled()
            with mode:  # the same instance again, inside
                assert not is_grad_enabled()
            assert is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()

    @no_grad()
    def inner(depth):
        assert not is_grad_enabled()
        return inner(depth - 1) if depth else is_grad_enabled()

    assert inner(3) is False and is_grad_enabled()
    with pytest.raises(RuntimeError), no_grad():
        raise RuntimeError("the mode is restored on the way out")
    assert is_grad_enabled()


def test_a_nested_models_changes_reach_the_outer_plan(rng):
    inner = models.Sequential([layers.Dense(4), layers.Activation("relu")])
    outer = models.Sequential([layers.Dense(4, input_shape=(3,)), inner, layers.Dense(2)])
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(outer.predict(x, verbose=0), layer_path(outer, x))
    inner.pop()  # the relu goes: the outer plan must not keep running it
    got = outer.predict(x, verbose=0)
    np.testing.assert_array_equal(got, layer_path(outer, x))
    inner.add(layers.Activation("tanh"))
    after = outer.predict(x, verbose=0)
    assert not np.array_equal(after, got)
    np.testing.assert_array_equal(after, layer_path(outer, x))


class Scaled(models.Sequential):
    def call(self, inputs, training=False):
        return super().call(inputs, training) * 2.0


def test_a_sequential_subclass_with_its_own_call_runs_it(rng):
    model = Scaled([layers.Dense(2, input_shape=(3,))])
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer_path(model, x))
    plain = models.Sequential([layers.Dense(2, input_shape=(3,))])
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x, verbose=0), 2 * plain.predict(x, verbose=0))


def test_layers_built_for_other_shapes_still_raise(rng):
    x = np.ones((2, 4), np.float32)
    inner = models.Sequential([layers.Input((5,)), layers.Activation("relu")])
    outer = models.Sequential([layers.Input((4,)), inner])
    with pytest.raises(ValueError, match=r"expected inputs of shape \(None, 5\)"):
        outer.predict(x, verbose=0)
    bn = layers.BatchNormalization()
    bn.build((None, 2, 4))
    model = models.Sequential([layers.Input((4,)), bn])
    assert model._inference_plan() is None
    with pytest.raises(ValueError, match="expected inputs of shape"):
        model.predict(x, verbose=0)


def test_window_arguments_changed_to_lists_still_work(rng):
    conv, pool = layers.Conv2D(3, 3, padding="same"), layers.MaxPooling2D(2, padding="same")
    model = models.Sequential([layers.Input((6, 6, 2)), conv, pool])
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    model.predict(x, verbose=0)
    conv.strides, pool.pool_size = [1, 1], [2, 2]  # unhashable now
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer_path(model, x))


def test_one_no_grad_shared_by_threads_restores_each_threads_mode():
    """Thread A enters, thread B (grad off before) enters, A leaves, B leaves: each gets
    its own mode back (a stack on the instance gave A B's mode and B A's)."""
    mode = no_grad()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    after = {}

    def a():
        with mode:
            a_in.set()
            b_in.wait()
        after["a"] = is_grad_enabled()
        a_out.set()

    def b():
        with no_grad():
            a_in.wait()
            with mode:
                b_in.set()
                a_out.wait()
            after["b"] = is_grad_enabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert after == {"a": True, "b": False}


# ------------------------------------------------------------------ functional models


def functional_cnn(dtype="float32"):
    """The layers of cnn() as a functional model, with a layer shared by two nodes and a
    nested functional model as one of its layers."""
    inner_in = dlcore.Input((7,), dtype=dtype)
    inner = dlcore.Model(inner_in, layers.Dense(7, activation="tanh", dtype=dtype)(inner_in))
    shared = layers.Dense(7, dtype=dtype)
    x = dlcore.Input((12, 10, 3), dtype=dtype)
    h = layers.Conv2D(6, 3, activation="relu", dtype=dtype)(x)
    h = layers.BatchNormalization(dtype=dtype)(h)
    h = layers.MaxPooling2D(2, padding="same", dtype=dtype)(h)
    h = layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same", activation="tanh", dtype=dtype)(h)
    h = layers.AveragePooling2D((2, 3), strides=1, padding="same", dtype=dtype)(h)
    h = layers.Flatten(dtype=dtype)(layers.Dropout(0.5, dtype=dtype)(h))
    h = layers.Dense(7, activation="relu", dtype=dtype)(h)
    h = shared(inner(shared(h)))
    h = models.Sequential([layers.Dense(5, dtype=dtype), layers.Dense(3, dtype=dtype)])(h)
    return dlcore.Model(x, layers.Dense(4, activation="softmax", dtype=dtype)(h))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_functional_plan_casts_batches_and_sees_new_weights(rng, dtype):
    model = functional_cnn(dtype)
    batch = 3
    x = rng.standard_normal((batch, 12, 10, 3)).astype(dtype)
    got = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict_on_batch(x), got)
    np.testing.assert_array_equal(model.predict(x, batch_size=2, verbose=0)[2:],
                                  layer_path(model, x[2:]))  # fmt: skip
    # an integer image is cast to the Input's dtype first, as the model's call casts it
    pixels = rng.integers(0, 255, (batch, 12, 10, 3)).astype(np.uint8)
    np.testing.assert_array_equal(model.predict(pixels, verbose=0), layer_path(model, pixels))
    # weights set after the plan was made are used
    weights = [w * 0.5 for w in model.get_weights()]
    model.set_weights(weights)
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer_path(model, x))


def test_functional_models_the_plan_cannot_serve_take_the_usual_path(rng):
    """Branches joined by a merge layer, an output in a list, two inputs, an Input with
    an unknown size, a layer with no step: no plan, and the same values as before."""
    x = rng.standard_normal((3, 6)).astype(np.float32)

    def check(model, inputs):
        assert model._inference_plan_for(inputs) is None
        got = model.predict(inputs, verbose=0)
        with no_grad():
            want = model(inputs, training=False)
        if isinstance(want, list):
            assert isinstance(got, list) and len(got) == len(want) == 1
            got, want = got[0], want[0]
        np.testing.assert_array_equal(got, want.data)
        return got

    a = dlcore.Input((6,))
    branches = layers.Add()([layers.Dense(4)(a), layers.Dense(4)(a)])
    check(dlcore.Model(a, branches), x)
    check(dlcore.Model(a, [layers.Dense(4)(a)]), x)  # predict still returns the list
    noisy = dlcore.Model(a, layers.GaussianNoise(0.1)(layers.Dense(4)(a)))
    check(noisy, x)
    # training=True given while building the graph does not reach predict, in Keras 3
    # (3.x on JAX drops nothing there either) as on the layer path: no zeros either way
    forced = dlcore.Model(a, layers.Dropout(0.5)(layers.Dense(4)(a), training=True))
    ones = np.ones((64, 6), np.float32)
    np.testing.assert_array_equal(forced.predict(ones, verbose=0), layer_path(forced, ones))
    b = dlcore.Input((6,))
    two = dlcore.Model([a, b], layers.Dense(2)(layers.Concatenate()([a, b])))
    assert two._inference_plan_for(x) is None
    assert two.predict([x, x], verbose=0).shape == (3, 2)
    seq = dlcore.Input((None, 6))
    ragged = dlcore.Model(seq, layers.Dense(2)(seq))
    steps = rng.standard_normal((3, 5, 6)).astype(np.float32)
    check(ragged, steps)


def test_functional_errors_and_subclasses_are_unchanged(rng):
    a = dlcore.Input((6,))
    model = dlcore.Model(a, layers.Dense(4)(a))
    with pytest.raises(ValueError, match=r"expects shape \(None, 6\)"):
        model.predict(np.zeros((2, 5), np.float32), verbose=0)
    with pytest.raises(ValueError):
        model.predict(np.zeros((0, 6), np.float32), verbose=0)

    class Doubled(dlcore.models.Functional):
        def call(self, inputs, training=False):
            return super().call(inputs, training=training) * 2.0

    doubled = Doubled(a, model.outputs[0])
    x = rng.standard_normal((2, 6)).astype(np.float32)
    assert doubled._inference_plan_for(x) is None
    np.testing.assert_allclose(doubled.predict(x, verbose=0), 2.0 * model.predict(x, verbose=0))


def test_a_nested_model_wired_to_another_shape_still_raises(rng):
    """A nested functional model whose Input differs from the tensor it was called on:
    the layer path raises, and so does predict (no plan reads past the mismatch)."""
    i = dlcore.Input((2, 2))
    inner = dlcore.Model(i, layers.Flatten()(i))
    x = dlcore.Input((4, 1))
    outer = dlcore.Model(x, inner(x))
    a = np.arange(8, dtype="float32").reshape(2, 4, 1)
    assert outer._inference_plan_for(a) is None
    with pytest.raises(ValueError, match=r"expects shape \(None, 2, 2\)"):
        outer.predict(a, verbose=0)


def test_changes_inside_a_model_nested_in_a_functional_one_reach_its_plan(rng):
    """pop/add on a Sequential nested in a functional model (itself nested in a
    Sequential): predict follows, as the layer path does."""
    a = rng.standard_normal((3, 5)).astype(np.float32)
    seq = models.Sequential([layers.Input((5,)), layers.Dense(4), layers.Dense(3, name="head")])
    x = dlcore.Input((5,))
    mid = dlcore.Model(x, seq(x))
    top = models.Sequential([layers.Input((5,)), mid])
    for model in (mid, top):
        np.testing.assert_array_equal(model.predict(a, verbose=0), layer_path(model, a))
    seq.pop()
    seq.add(layers.Dense(2, name="new_head"))
    for model in (mid, top):
        got = model.predict(a, verbose=0)
        assert got.shape == (3, 2)
        np.testing.assert_array_equal(got, layer_path(model, a))


# ------------------------------------------------------------------ convolution and pooling
# in blocks of images (plans.pooled_in_blocks)


def pooled_cnn(dtype, build):
    """A direct convolution (one input channel) and a Winograd one (3x3, 16 channels),
    each before a pooling layer, and a 1x1 convolution (one GEMM) before a third."""
    stack = [
        layers.Conv2D(16, 3, activation="relu", dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype),
        layers.Conv2D(32, 3, padding="same", activation="tanh", dtype=dtype),
        layers.AveragePooling2D(2, padding="same", dtype=dtype),
        layers.Conv2D(8, 1, dtype=dtype),
        layers.MaxPooling2D(2, padding="same", dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(3, dtype=dtype),
    ]
    if build == "sequential":
        return models.Sequential([layers.Input((14, 12, 1), dtype=dtype), *stack])
    x = h = dlcore.Input((14, 12, 1), dtype=dtype)
    for layer in stack:
        h = layer(h)
    return dlcore.Model(x, h)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("build", ["sequential", "functional"])
@pytest.mark.parametrize("block_bytes", [1, 4 * 12 * 10 * 16 * 4 + 1])
def test_convolution_and_pooling_in_blocks_keep_the_layer_calls_bits(
    rng, monkeypatch, dtype, build, block_bytes
):
    from dlcore.models import plans

    kernels = {ops.conv2d_plan((23, 14, 12, 1), (3, 3, 1, 16))["forward"],
               ops.conv2d_plan((23, 6, 5, 16), (3, 3, 16, 32), padding=1)["forward"],
               ops.conv2d_plan((23, 3, 3, 32), (1, 1, 32, 8))["forward"]}  # fmt: skip
    assert kernels == {"direct", "winograd", "pointwise"}  # what the model covers
    monkeypatch.setattr(plans, "BLOCK_BYTES", block_bytes)
    model = pooled_cnn(dtype, build)
    x = rng.standard_normal((23, 14, 12, 1)).astype(dtype)
    batches = {}  # kernel shape -> the batch sizes the convolution ran
    convolve = ops.conv2d_forward

    def counting(x, kernel, *args, **kwargs):
        batches.setdefault(kernel.shape, []).append(x.shape[0])
        return convolve(x, kernel, *args, **kwargs)

    monkeypatch.setattr(ops, "conv2d_forward", counting)
    got = model.predict(x, batch_size=23, verbose=0)
    itemsize = np.dtype(dtype).itemsize
    for kernel, image in [((3, 3, 1, 16), (12, 10, 16)), ((3, 3, 16, 32), (6, 5, 32))]:
        block = max(1, block_bytes // (int(np.prod(image)) * itemsize))
        sizes = [min(block, 23 - start) for start in range(0, 23, block)]
        assert len(sizes) > 2  # blocks, a last one shorter than the others at 4 and 8
        assert batches[kernel] == sizes
    assert batches[(1, 1, 32, 8)] == [23]  # a GEMM's bits may follow its rows: whole
    monkeypatch.setattr(ops, "conv2d_forward", convolve)
    np.testing.assert_array_equal(got, layer_path(model, x))
    np.testing.assert_array_equal(model.predict(x[:1], verbose=0), layer_path(model, x[:1]))


def test_activations_and_poolings_that_read_the_batch_keep_it_whole(rng, monkeypatch):
    from dlcore.models import plans

    monkeypatch.setattr(plans, "BLOCK_BYTES", 1)

    def batch_centred(t):  # a user's activation over the whole batch
        return t - t.mean()

    class CentredPool(layers.MaxPooling2D):
        def call(self, inputs, training=False):
            y = super().call(inputs, training)
            return y - y.mean()

        def _inference_fn(self):
            pool = super()._inference_fn()
            return lambda a: (lambda y: y - y.mean(dtype=y.dtype))(pool(a))

    x = rng.standard_normal((5, 8, 8, 2)).astype(np.float32)
    for stack in (
        [layers.Conv2D(4, 3, activation=batch_centred), layers.MaxPooling2D(2)],
        [layers.Conv2D(4, 3), CentredPool(2)],
    ):
        model = models.Sequential([layers.Input((8, 8, 2)), *stack])
        assert model._inference_plan_for(x) is not None
        np.testing.assert_array_equal(model.predict(x, batch_size=5), layer_path(model, x))
