"""The shape of the house: imports flow one way (layers -> functional -> ops), nothing
writes another object's private attributes, and one registry resolves every name."""

import ast
import pathlib

import numpy as np
import pytest

import dlcore
from dlcore import layers, models
from dlcore.registry import registries

PACKAGE = pathlib.Path(dlcore.__file__).parent

# Lower levels never import higher ones. A module's level is that of its top-level
# name under dlcore (dlcore.layers.core -> "layers").
LEVELS = {
    "_core": 0, "_isa": 0, "ops": 0, "registry": 0, "random": 0, "progress": 0, "profiler": 0,
    "tensor": 1,
    "functional": 2,
    "activations": 3, "initializers": 3, "regularizers": 3, "constraints": 3, "losses": 3, "metrics": 3,
    "optimizers": 3, "info": 3, "datasets": 3, "utils": 3,
    "layers": 4,
    "callbacks": 5, "distributed": 5, "saving": 5, "export": 5,
    "trainers": 6,
    "models": 7,
    "model_selection": 8, "examples": 8, "keras": 8, "show_config": 8, "__init__": 9,
    "explain": 8, "tuning": 8,
}  # fmt: skip


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text(), str(path))


def _top(rel):
    return rel.parts[0].removesuffix(".py")


def _imported(tree, rel):
    """The dlcore top-level names a module imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "dlcore" and len(parts) > 1:
                    yield parts[1]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the module's own package
                continue
            parts = (node.module or "").split(".")
            if parts[0] != "dlcore":
                continue
            if len(parts) > 1:
                yield parts[1]
            else:
                yield from (alias.name for alias in node.names)


def test_every_module_has_a_level():
    missing = {_top(rel) for rel, _ in _modules()} - set(LEVELS)
    assert not missing, f"give these modules a level in LEVELS: {sorted(missing)}"


def test_imports_flow_one_way():
    upward = []
    for rel, tree in _modules():
        own = LEVELS[_top(rel)]
        for name in _imported(tree, rel):
            if name in LEVELS and LEVELS[name] > own:
                upward.append(f"{rel} imports dlcore.{name}")
    assert not upward, "imports against the layering: " + "; ".join(upward)


def test_models_have_no_mpi_code():
    # Distribution is the trainer's strategy: no model code names MPI, ranks or worlds.
    for path in (PACKAGE / "models").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "id", None) or getattr(node, "attr", None) or ""
            assert not any(w in name.lower() for w in ("distributed", "mpi", "world", "rank")), (
                f"{path.name}:{node.lineno} uses {name}"
            )


def test_nothing_writes_another_objects_private_attributes():
    # The autograd engine owns the Tensor's graph slots; everyone else writes only
    # their own (self./cls.) private attributes.
    found = []
    for rel, tree in _modules():
        if rel.name == "tensor.py":
            continue
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr.startswith("_")
                    and not t.attr.startswith("__")
                    and not (isinstance(t.value, ast.Name) and t.value.id in ("self", "cls"))
                    and not (isinstance(t.value, ast.Name) and t.value.id == "wrapper")
                ):
                    found.append(f"{rel}:{node.lineno} writes .{t.attr}")
    assert not found, found


def test_one_registry_per_kind_with_helpful_errors():
    kinds = set(registries)
    assert {
        "layer",
        "activation",
        "initializer",
        "regularizer",
        "loss",
        "metric",
        "optimizer",
        "learning-rate schedule",
    } <= kinds
    with pytest.raises(ValueError, match=r"unknown layer 'Dense2'.*Conv2D.*Dense"):
        layers.deserialize({"class_name": "Dense2", "config": {}})
    with pytest.raises(ValueError, match=r"unknown activation 'rellu'.*relu"):
        dlcore.activations.get("rellu")
    with pytest.raises(ValueError, match=r"unknown initializer 'glorot'.*GlorotUniform"):
        dlcore.initializers.get("glorot")
    with pytest.raises(ValueError, match=r"the registered losses are: .*MeanSquaredError"):
        dlcore.losses.get("mse2")


def test_keras_default_layer_names():
    names = [
        layers.Conv2D(1, 1).name,
        layers.MaxPooling2D().name,
        layers.LeakyReLU().name,
        layers.LSTM(1).name,
    ]
    prefixes = ["conv2d", "max_pooling2d", "leaky_re_lu", "lstm"]
    for name, prefix in zip(names, prefixes):
        assert name == prefix or (
            name.startswith(prefix + "_") and name[len(prefix) + 1 :].isdigit()
        )

    class BrandNewThing(layers.Layer):
        pass

    assert [BrandNewThing().name for _ in range(3)] == [
        "brand_new_thing",
        "brand_new_thing_1",
        "brand_new_thing_2",
    ]


@layers.registry.register()
class Scale(layers.Layer):
    """A pure-Python layer defined outside dlcore: one weight, one line of maths."""

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), "ones")

    def call(self, inputs):
        return inputs * self.scale


def test_a_new_layer_needs_only_its_class(tmp_path):
    model = models.Sequential([layers.Dense(3, input_shape=(2,)), Scale()])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 3), np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.dlc")
    loaded = models.load_model(tmp_path / "m.dlc")
    assert isinstance(loaded.layers[1], Scale)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
