"""Functional models: ``Model(inputs, outputs)`` over the graph that calling layers on
``Input`` tensors recorded (Keras 3's functional API).

    x = dlcore.Input(shape=(28, 28, 1), name="image")
    h = layers.Conv2D(32, 3, activation="relu")(x)
    y = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    model = dlcore.Model(inputs=x, outputs=y)

Inputs and outputs may be one tensor, a list or a dict; layers may be shared (called
on several tensors) and models may be used as layers.
"""

from __future__ import annotations

import numpy as np

from dlcore import layers as layers_module
from dlcore.layers.base import registry
from dlcore.layers.symbolic import KerasTensor, _sorted_keys, flatten, pack_like
from dlcore.registry import using_custom_objects
from dlcore.tensor import Tensor, is_grad_enabled

from .model import Model
from .plans import conv_pool_step, training_chain, training_key

__all__ = ["Functional"]


def _structure_of(value, what):
    """A KerasTensor, or a list/tuple/dict of them, checked."""
    for leaf in flatten(value):
        if not isinstance(leaf, KerasTensor):
            raise TypeError(
                f"Model: {what} must be KerasTensors (from dlcore.Input or a layer called on "
                f"one), or lists or dicts of them; got {type(leaf).__name__}"
            )
    if not flatten(value):
        raise ValueError(f"Model: {what} is empty")
    return list(value) if isinstance(value, tuple) else value


def _graph(inputs, outputs):
    """The nodes between ``inputs`` and ``outputs`` in the order they run, and the
    layers in Keras' order: by decreasing depth (longest path to an output), ties by
    first visit of a depth-first walk back from the outputs."""
    declared = {id(t) for t in inputs}
    order, first_visit, on_path, done = [], {}, set(), set()

    def visit(tensor):
        node = tensor.node
        if id(node) in done:
            return
        if id(tensor) in declared and not node.is_input:
            done.add(id(node))  # a declared input produced by an outer layer: a leaf here
            return
        if node.is_input and id(tensor) not in declared:
            raise ValueError(
                f"Model: the outputs depend on Input {tensor.name!r} {tensor.shape}, which "
                f"is not among the model's inputs {[t.name for t in inputs]}; add it to "
                f"inputs=[...]"
            )
        if id(node) in on_path:
            raise ValueError(f"Model: the graph has a cycle through layer {node.layer.name!r}")
        first_visit.setdefault(id(node.layer), len(first_visit))
        on_path.add(id(node))
        if not node.is_input:
            for t in node.input_tensors:
                visit(t)
        on_path.discard(id(node))
        done.add(id(node))
        order.append(node)

    for t in outputs:
        visit(t)
    for t in inputs:  # declared inputs the outputs do not use still belong to the model
        if t.node.is_input and id(t.node) not in done:
            first_visit.setdefault(id(t.node.layer), len(first_visit))
            done.add(id(t.node))
            order.insert(0, t.node)

    depth = {id(n): 0 for n in order}
    for node in reversed(order):  # outputs first: push depths towards the inputs
        if node.is_input:
            continue
        for t in node.input_tensors:
            if id(t.node) in depth:
                depth[id(t.node)] = max(depth[id(t.node)], depth[id(node)] + 1)
    layer_depth, layers = {}, {}
    for node in order:
        layers[id(node.layer)] = node.layer
        layer_depth[id(node.layer)] = max(layer_depth.get(id(node.layer), 0), depth[id(node)])
    ordered = sorted(layers, key=lambda k: (-layer_depth[k], first_visit.get(k, 0)))
    return order, [layers[k] for k in ordered]


@registry.register()
class Functional(Model):
    """A model defined by its input and output tensors; built at construction."""

    _untracked = Model._untracked | {
        "_inputs",
        "_outputs",
        "_nodes",
        "_operations",
        "_plan",
        "_train_plan",
    }

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._inputs_struct = _structure_of(inputs, "inputs")
        self._outputs_struct = _structure_of(outputs, "outputs")
        self._inputs = flatten(self._inputs_struct)
        self._outputs = flatten(self._outputs_struct)
        if len({id(t) for t in self._inputs}) != len(self._inputs):
            raise ValueError("Model: the same tensor is listed twice in inputs")
        nodes, operations = _graph(self._inputs, self._outputs)
        names = [layer.name for layer in operations]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"Model: layer names must be unique in a model; {repeated} name several "
                f"layers (give them name=...)"
            )
        self._nodes = [n for n in nodes if not n.is_input]
        self._operations = operations
        self.input_shape = self._unpack([t.shape for t in self._inputs])
        self.output_shape = self._unpack([t.shape for t in self._outputs])
        self.built = True

    @staticmethod
    def _unpack(items):
        return items[0] if len(items) == 1 else items

    # ------------------------------------------------------------ structure
    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @property
    def input_names(self):
        return [t.name for t in self._inputs]

    @property
    def output_names(self):
        """One name per output: a dict output's key, else its layer's name."""
        if isinstance(self._outputs_struct, dict):  # in flatten's order: sorted, as Keras
            return _sorted_keys(self._outputs_struct)
        return [t.history[0].name for t in self._outputs]

    @property
    def layers(self):
        return list(self._operations)

    def _tracked_layers(self):
        return list(self._operations)

    def _check_input(self, x):
        """Inputs are checked per input in :meth:`call`."""

    # ------------------------------------------------------------ running
    def _flat_inputs(self, inputs):
        """The given inputs in the order of ``self._inputs``."""
        n = len(self._inputs)
        if isinstance(inputs, dict):
            by_name = {t.name: t for t in self._inputs}
            if isinstance(self._inputs_struct, dict):
                by_name.update(self._inputs_struct)
            unknown = sorted(set(inputs) - set(by_name))
            if unknown:
                raise ValueError(
                    f"{self.name}: inputs {unknown} name no input of the model; its inputs "
                    f"are {sorted(by_name)}"
                )
            missing = [t.name for t in self._inputs if not any(by_name[k] is t for k in inputs)]
            if missing:
                raise ValueError(f"{self.name}: no data for inputs {missing}")
            flat = [None] * n
            for key, value in inputs.items():
                flat[next(i for i, t in enumerate(self._inputs) if t is by_name[key])] = value
            return flat
        flat = list(inputs) if isinstance(inputs, (list, tuple)) and n > 1 else [inputs]
        if isinstance(inputs, (list, tuple)) and n == 1 and len(inputs) == 1:
            flat = [inputs[0]]
        if len(flat) != n:
            raise ValueError(
                f"{self.name}: expected {n} inputs ({self.input_names}), got {len(flat)}"
            )
        return flat

    def _input_value(self, value, spec):
        x = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        if x.ndim != len(spec.shape) or any(
            e is not None and e != s for e, s in zip(spec.shape[1:], x.shape[1:])
        ):
            raise ValueError(
                f"{self.name}: input {spec.name!r} expects shape {spec.shape} (None: any "
                f"size), got {x.shape}"
            )
        if x.dtype != spec.dtype and not (x.requires_grad and x.dtype.kind == "f"):
            x = Tensor(x.data.astype(spec.dtype))
        return x

    def call(self, inputs, training=False):
        values = {}
        for spec, value in zip(self._inputs, self._flat_inputs(inputs)):
            values[id(spec)] = self._input_value(value, spec)

        def real(leaf):
            return values[id(leaf)] if isinstance(leaf, KerasTensor) else leaf

        for node in self._nodes:
            args = pack_like(node.args, map(real, flatten(node.args)))
            kwargs = pack_like(node.kwargs, map(real, flatten(node.kwargs)))
            out = node.layer(*args, training=training, **kwargs)
            for spec, value in zip(flatten(node.outputs), flatten(out)):
                values[id(spec)] = value
        return pack_like(self._outputs_struct, [values[id(t)] for t in self._outputs])

    # ------------------------------------------------------------ inference plan
    # As Sequential's (see there): predict runs the layers' inference steps on arrays,
    # node after node, when the model has one input and one output (not in a list or
    # dict), every node is a layer called on one tensor with no other argument, and
    # every layer has a step. The plan is kept for the layers it was made of (a nested
    # Sequential may change); the steps read the weights on every call.

    def _plan_fits(self, x):
        """Whether a plan may stand in for the call on x: an array of the one input's
        shape, and the class's own call."""
        if type(x) is not np.ndarray or not isinstance(self._inputs_struct, KerasTensor):
            return False
        cls = type(self)  # a subclass's own call must run
        if cls.call is not Functional.call or cls.__call__ is not Functional.__call__:
            return False
        shape = self._inputs_struct.shape
        # an unknown size (None) never equals one of x's
        return x.ndim == len(shape) and x.shape[1:] == tuple(shape[1:]) and x.shape[0] > 0

    def _inference_plan_for(self, x):
        return self._inference_plan() if self._plan_fits(x) else None

    def _plan_key(self):
        """Every layer the plan runs, nested models' too, in order: a nested Sequential
        can still gain or lose layers."""
        key = []
        for node in self._nodes:
            key.append(node.layer)
            if getattr(type(node.layer), "_plan_key", None) is not None:  # as Sequential's
                key.extend(node.layer._plan_key())
        return key

    def _inference_plan(self):
        """The plan (a function array -> array) for the graph, or None."""
        return self._kept_plan("_plan", self._make_plan)

    def _kept_plan(self, attr, make, extra=None):
        """The plan kept in ``attr`` while the graph's layers are the ones it was made
        of (identity) and ``extra(layers)`` is as it was, else a new one from
        ``make()``."""
        key = self._plan_key()
        if extra is not None:
            key += extra([node.layer for node in self._nodes])
        cached = self.__dict__.get(attr)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = make()
        setattr(self, attr, (key, plan))
        return plan

    def _make_plan(self):
        from dlcore.layers.base import inference_step

        spec, output = self._inputs_struct, self._outputs_struct
        if not isinstance(spec, KerasTensor) or not isinstance(output, KerasTensor):
            return None
        steps = []  # (step, id of the input tensor, id of the output tensor)
        for node in self._nodes:
            outs = flatten(node.outputs)
            if len(node.args) != 1 or node.kwargs or len(outs) != 1:
                return None
            arg = node.args[0]
            if not isinstance(arg, KerasTensor):
                return None
            # the layer was built for the shape that reaches it here (a nested model
            # with an Input of its own may not have been: its call then says so)
            built = getattr(node.layer, "input_shape", None)
            if built is None or tuple(built) != tuple(arg.shape):
                return None
            step = inference_step(node.layer)
            if step is None:
                return None
            steps.append((step, id(arg), id(outs[0])))
        dtype, first, last = np.dtype(spec.dtype), id(spec), id(output)
        steps = self._pooled_in_blocks(steps, last)

        def run(x):
            values = {first: x if x.dtype == dtype else x.astype(dtype)}  # as _input_value
            for step, source, target in steps:
                values[target] = step(values[source])
            return values[last]

        return run

    def _pooled_in_blocks(self, steps, last):
        """``steps`` with a convolution and the pooling that alone reads its output as
        one step, which runs large batches in blocks of images (plans.conv_pool_step)."""
        reads = {}
        for _, source, _ in steps:
            reads[source] = reads.get(source, 0) + 1
        joined, i = [], 0
        while i < len(steps):
            if i + 1 < len(steps):
                (conv, source, made), (pool, read, target) = steps[i], steps[i + 1]
                if read == made and reads[made] == 1 and made != last:
                    layers = self._nodes[i].layer, self._nodes[i + 1].layer
                    step = conv_pool_step(*layers, conv, pool)
                    if step is not None:
                        joined.append((step, source, target))
                        i += 2
                        continue
            joined.append(steps[i])
            i += 1
        return joined

    def _inference_fn(self):
        return self._make_plan()

    # ------------------------------------------------------------ training plan
    # fit's and train_on_batch's steps on arrays (see models/plans.py), when the graph
    # is a chain: each node a layer called on the one tensor the node before it made
    # (the first on the input), the last node's output the model's.

    def _training_plan_for(self, x):
        if not is_grad_enabled() or not self._plan_fits(x):
            return None
        return self._kept_plan("_train_plan", self._make_training_plan, training_key)

    def _make_training_plan(self):
        spec, output = self._inputs_struct, self._outputs_struct
        layers, shapes, previous = [], [], spec
        for node in self._nodes:
            outs = flatten(node.outputs)
            if len(node.args) != 1 or node.kwargs or len(outs) != 1:
                return None
            if node.args[0] is not previous:
                return None
            layers.append(node.layer)
            shapes.append(previous.shape)
            previous = outs[0]
        if previous is not output:
            return None
        return training_chain(layers, shapes, np.dtype(spec.dtype))

    def compute_output_shape(self, input_shape):
        return self.output_shape

    # ------------------------------------------------------------ summary
    _summary_headers = ("Layer (type)", "Output Shape", "Param #", "Connected to")

    def _summary_row(self, layer):
        own = {id(n) for n in self._nodes}
        nodes = [n for n in layer._inbound_nodes if id(n) in own or n.is_input]
        shapes = [str(t.shape) for n in nodes for t in flatten(n.outputs)]
        links = []
        for node in nodes:
            for t in node.input_tensors:
                producer, node_index, tensor_index = t.history
                links.append(f"{producer.name}[{node_index}][{tensor_index}]")
        shape = shapes[0] if len(shapes) == 1 else "multiple"
        return [f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}",
                ", ".join(links) or "-"]  # fmt: skip

    # ------------------------------------------------------------ config
    def get_config(self):
        own = {id(n) for n in self._nodes}

        def tensor_ref(t):
            layer, node_index, tensor_index = t.history
            return [layer.name, node_index, tensor_index]

        def serialize_leaf(leaf):
            if isinstance(leaf, KerasTensor):
                return {"__keras_tensor__": tensor_ref(leaf)}
            return leaf

        layer_configs = []
        for layer in self._operations:
            nodes = []
            for node in layer._inbound_nodes:
                if id(node) in own:
                    nodes.append(
                        {
                            "args": list(
                                pack_like(node.args, map(serialize_leaf, flatten(node.args)))
                            ),
                            "kwargs": pack_like(
                                node.kwargs, map(serialize_leaf, flatten(node.kwargs))
                            ),
                        }
                    )
            spec = layers_module.serialize(layer)
            spec["name"] = layer.name
            spec["inbound_nodes"] = nodes
            layer_configs.append(spec)

        def refs(struct):
            return pack_like(struct, [tensor_ref(t) for t in flatten(struct)])

        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layer_configs,
            "input_layers": refs(self._inputs_struct),
            "output_layers": refs(self._outputs_struct),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model of ``get_config()``'s output; ``custom_objects`` (name -> class or
        function, the names the config uses) are found while it is rebuilt."""
        if custom_objects is not None:
            with using_custom_objects(custom_objects, f"{cls.__name__}.from_config"):
                return cls.from_config(config)
        created = {}
        pending = []
        for spec in config["layers"]:
            keys = ("module", "class_name", "config", "registered_name")  # a custom layer's too
            layer = layers_module.deserialize({k: spec[k] for k in keys if k in spec})
            created[spec["name"]] = layer
            pending.append((layer, list(spec.get("inbound_nodes", []))))

        def tensor(ref):
            name, node_index, tensor_index = ref
            layer = created[name]
            return flatten(layer._inbound_nodes[node_index].outputs)[tensor_index]

        def revive(leaf):
            if isinstance(leaf, dict) and "__keras_tensor__" in leaf:
                return tensor(leaf["__keras_tensor__"])
            return leaf

        def ready(node_data):
            for leaf in flatten([node_data["args"], node_data["kwargs"]]):
                if isinstance(leaf, dict) and "__keras_tensor__" in leaf:
                    name, node_index, _ = leaf["__keras_tensor__"]
                    if len(created[name]._inbound_nodes) <= node_index:
                        return False
            return True

        # Layers are listed inputs first, but a shared layer's later nodes may wait on
        # layers listed after it: call nodes as their inputs become available.
        progress = True
        while progress and any(nodes for _, nodes in pending):
            progress = False
            for layer, nodes in pending:
                while nodes and ready(nodes[0]):
                    data = nodes.pop(0)
                    args = _revive_structure(data["args"], revive)
                    kwargs = _revive_structure(data["kwargs"], revive)
                    layer(*args, **kwargs)
                    progress = True
        if any(nodes for _, nodes in pending):
            raise ValueError("Functional.from_config: the layers' connections form no graph")

        def tensors(refs):
            if isinstance(refs, dict):
                return {k: tensors(v) for k, v in refs.items()}
            if refs and isinstance(refs[0], list):
                return [tensors(r) for r in refs]
            return tensor(refs)

        inputs = tensors(config["input_layers"])
        outputs = tensors(config["output_layers"])
        return cls(
            inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True)
        )


def _revive_structure(struct, revive):
    if isinstance(struct, dict) and "__keras_tensor__" in struct:
        return revive(struct)
    if isinstance(struct, (list, tuple)):
        return [_revive_structure(s, revive) for s in struct]
    if isinstance(struct, dict):
        return {k: _revive_structure(v, revive) for k, v in struct.items()}
    return struct
