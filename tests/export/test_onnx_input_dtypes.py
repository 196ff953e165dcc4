"""ONNX export of integer inputs: an Input declared int32, int64 or uint8 is a graph input
of that dtype, which ONNX Runtime takes as it comes; an Embedding gathers the ids without a
cast (ids above 2**24 stay exact) and a layer computing in floats gets them as float32, as
dlcore casts them. Checked with ONNX's full checker and against dlcore's predict."""

import numpy as np
import pytest

import dlcore
from dlcore import layers, models

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
RTOL, ATOL = 1e-5, 2e-6


def exported(model, tmp_path):
    """The model's ONNX proto (checked in full: types and shapes) and its session."""
    path = model.export(tmp_path / f"{model.name}.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return proto, session


def elem_type(dtype):
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_ids_are_an_integer_graph_input(tmp_path, dtype):
    ids = dlcore.Input(shape=(5,), dtype=dtype, name="ids")
    embedded = layers.Flatten()(layers.Embedding(30, 4)(ids))
    counted = layers.Dense(3)(ids)  # computes in floats: the ids cast once, in the graph
    model = dlcore.Model(ids, [layers.Concatenate()([embedded, counted]), ids], name="ids")
    proto, session = exported(model, tmp_path)
    (graph_input,) = proto.graph.input
    assert graph_input.type.tensor_type.elem_type == elem_type(dtype)
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [
        elem_type(np.float32),
        elem_type(dtype),
    ]
    (gather,) = [n for n in proto.graph.node if n.op_type == "Gather"]
    assert gather.input[1] == graph_input.name  # no float on the way: large ids stay exact
    assert [n.op_type for n in proto.graph.node].count("Cast") == 1
    x = np.random.default_rng(0).integers(0, 30, (4, 5)).astype(dtype)
    got = session.run(None, {"ids": x})
    expected = model.predict(x)
    np.testing.assert_allclose(got[0], expected[0], RTOL, ATOL)
    np.testing.assert_array_equal(got[1], x)
    assert got[1].dtype == np.dtype(dtype)


def test_uint8_images_are_cast_where_a_layer_computes(tmp_path):
    pixels = dlcore.Input(shape=(6, 6, 1), dtype="uint8", name="pixels")
    y = layers.Rescaling(1 / 255)(pixels)
    y = layers.Conv2D(2, 3, activation="relu")(y)
    model = dlcore.Model(pixels, layers.GlobalMaxPooling2D()(y), name="pixels")
    proto, session = exported(model, tmp_path)
    assert proto.graph.input[0].type.tensor_type.elem_type == elem_type(np.uint8)
    x = np.random.default_rng(1).integers(0, 256, (3, 6, 6, 1)).astype(np.uint8)
    np.testing.assert_allclose(session.run(None, {"pixels": x})[0], model.predict(x), RTOL, ATOL)


def test_float_inputs_stay_float32(tmp_path):
    x_in = dlcore.Input(shape=(4,), dtype="float64", name="x")
    model = dlcore.Model(x_in, layers.Dense(2)(x_in), name="floats")
    proto, session = exported(model, tmp_path)
    assert proto.graph.input[0].type.tensor_type.elem_type == elem_type(np.float32)
    assert "Cast" not in [n.op_type for n in proto.graph.node]


def test_a_sequential_keeps_its_inputs_integer_dtype(tmp_path):
    model = models.Sequential([layers.Input((5,), dtype="int32"), layers.Embedding(30, 4),
                               layers.Flatten(), layers.Dense(2)])  # fmt: skip
    proto, session = exported(model, tmp_path)
    assert proto.graph.input[0].type.tensor_type.elem_type == elem_type(np.int32)
    x = np.array([[1, 2, 3, 29, 0]], np.int32)
    np.testing.assert_allclose(session.run(None, {"inputs": x})[0], model.predict(x), RTOL, ATOL)
