"""The Model base class: a Layer that owns other layers, with the Trainer's
``compile``/``fit``/``evaluate``/``predict`` (:mod:`dlcore.trainers`) and saving
(:mod:`dlcore.saving`).

A model is a layer (so models nest: a GAN's combined model holds the generator and
the discriminator) and a callable on Tensors, so a hand-written loop can do
``loss = loss_fn(y, model(x, training=True)); loss.backward(); opt.step()``.
"""

from __future__ import annotations

import os

import numpy as np

from dlcore import saving
from dlcore.layers.base import Layer, registry
from dlcore.registry import using_custom_objects
from dlcore.trainers import Trainer

__all__ = ["Model"]


@registry.register()
class Model(Trainer, Layer):
    """Base model. Subclass it and define ``call(inputs)`` (with ``training`` if it
    matters) for a custom architecture; layers assigned as attributes, or held in
    lists and dicts of attributes, are tracked. Or use Sequential."""

    # No cast on the way in: a model's layers each cast their inputs to their own dtype,
    # so a float64 stack keeps float64 inputs exact whatever the model's own dtype.
    casts_inputs = False
    _untracked = frozenset({"optimizer", "loss", "compiled_metrics", "history", "_strategy"})

    def __new__(cls, *args, **kwargs):
        # Model(inputs, outputs) is a functional model, as in Keras.
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._init_trainer()

    # ------------------------------------------------------------ structure
    @property
    def layers(self):
        return self._tracked_layers()

    def get_layer(self, name=None, index=None):
        """The layer called ``name`` (or at position ``index`` of ``layers``)."""
        layers = self.layers
        if index is not None:
            if name is not None:
                raise ValueError("get_layer: give name or index, not both")
            if not -len(layers) <= index < len(layers):
                raise ValueError(
                    f"get_layer: index {index} is out of range; {self.name} has "
                    f"{len(layers)} layers"
                )
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"get_layer: no layer named {name!r} in {self.name}; its layers are "
            f"{[l.name for l in layers]}"
        )

    def _check_input(self, x):
        """A built model with a known input shape refuses inputs of another rank or
        size, naming both (a 1-D array given to a (None, 4) model is one such)."""
        expected = self.input_shape
        if not self.built or expected is None or isinstance(expected, list):
            return
        shape = np.shape(x)
        ok = len(shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected[1:], shape[1:])
        )
        if not ok:
            raise ValueError(
                f"{self.name}: expected inputs of shape {expected} (None: any size), got "
                f"an array of shape {shape}"
            )

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, (list, tuple, dict)):
            self._check_input(inputs)
        return super().__call__(inputs, *args, **kwargs)

    # ------------------------------------------------------------ summary
    def _summary_row(self, layer):
        return [f"{layer.name} ({type(layer).__name__})", str(layer.output_shape),
                f"{layer.count_params():,}"]  # fmt: skip

    _summary_headers = ("Layer (type)", "Output Shape", "Param #")

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):  # fmt: skip
        """Prints the layer table: name (type), output shape, parameter count (and, for
        a functional model, what each layer is connected to).

        Keras' options: ``show_trainable`` adds a Trainable column (Y, N, or - for a
        layer without weights); ``expand_nested`` lists a nested model's layers under
        it; ``layer_range`` = (first, last) layer names limits the rows; ``line_length``
        widens the table to at least that many characters; ``positions`` is accepted,
        the columns being sized to their contents.
        """
        if not self.built:
            raise ValueError(
                f"{self.name}: this model has not yet been built; give the "
                f"first layer an input_shape, call build(input_shape), or "
                f"call the model on data first"
            )
        print_fn = print_fn or print
        headers = list(self._summary_headers) + (["Trainable"] if show_trainable else [])
        layers = list(self.layers)
        if layer_range is not None:
            layers = _layer_range(layers, layer_range, self.name)

        def rows_of(model, layers, indent):
            out = []
            for layer in layers:
                row = model._summary_row(layer)
                row[0] = indent + row[0]
                if show_trainable:
                    row.append("-" if not layer.weights else "Y" if layer.trainable else "N")
                out.append(row)
                if expand_nested and isinstance(layer, Model) and layer.built:
                    out += rows_of(layer, layer.layers, indent + "  ")
            return out

        rows = rows_of(self, layers, "")
        widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers)]
        if line_length is not None and sum(widths) < int(line_length):
            widths[-1] += int(line_length) - sum(widths)
        line = "=" * sum(widths)

        def fmt(cells):
            return "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        out = [f'Model: "{self.name}"', line.replace("=", "_"), fmt(headers), line]
        for i, r in enumerate(rows):
            out.append(fmt(r))
            out.append("_" * sum(widths) if i < len(rows) - 1 else line)
        out += [
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
        ]
        for text in out:
            print_fn(text)

    # ------------------------------------------------------------ saving
    def save_weights(self, path):
        """Writes the weights (atomically) to ``path``: ``*.dlc`` in dlcore's checkpoint
        format, ``*.weights.h5`` in Keras 3's (after a distributed fit, on rank 0
        only)."""
        if self._strategy.is_chief:
            saving.save_weights(self, path)

    def load_weights(self, path):
        """Loads weights saved by ``save_weights`` or ``save`` (or by Keras 3) into this
        model; refuses a file whose weights do not match the model's, naming the first
        mismatch."""
        saving.load_weights(self, path)

    def save(self, filepath=None, overwrite=True, zipped=None, **kwargs):
        """Writes architecture, weights, compile settings and optimizer state to
        ``filepath``, atomically, in the format its extension names: ``*.dlc`` for
        dlcore's checkpoint format (``models.load_model(path)`` restores the model so
        that training resumes exactly where it stopped), ``*.keras`` for Keras 3's
        archive. ``overwrite=False`` refuses an existing file (FileExistsError) where
        Keras would ask. After a distributed fit, rank 0 alone writes."""
        path = kwargs.pop("path", None)
        if kwargs:
            raise TypeError(f"{self.name}.save: unexpected keyword arguments {sorted(kwargs)}")
        if path is not None:  # dlcore's earlier name of the argument
            filepath = path
        if filepath is None:
            raise TypeError(f"{self.name}.save: give the file to write, e.g. save('m.keras')")
        if zipped not in (None, True):
            raise NotImplementedError(
                f"{self.name}.save(zipped={zipped!r}): only the zipped .keras archive is "
                f"written; leave zipped=None"
            )
        if not overwrite and os.path.exists(os.fspath(filepath)):
            raise FileExistsError(
                f"{self.name}.save: {os.fspath(filepath)!r} exists and overwrite=False"
            )
        if self._strategy.is_chief:
            saving.save_model(self, filepath)

    def export(self, filepath, format="onnx", verbose=False):
        """Writes the inference graph for deployment: ``format="onnx"`` an ONNX file
        (opset 17, float32, any batch size). Needs ``pip install 'dlcore[onnx]'``."""
        from dlcore.export import export_model

        path = export_model(self, filepath, format=format)
        if verbose:
            print(f"Saved the {format} export of {self.name} at {path}")
        return path

    def get_config(self):
        raise NotImplementedError(
            f"{type(self).__name__} cannot describe its architecture; "
            f"use save_weights / load_weights"
        )

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A model from ``get_config()``'s output; ``Model.from_config`` takes a
        functional model's config, as in Keras. ``custom_objects`` (name -> class or
        function, the names the config uses) are found while it is rebuilt."""
        with using_custom_objects(custom_objects, f"{cls.__name__}.from_config"):
            if cls is Model and isinstance(config, dict) and "input_layers" in config:
                from .functional import Functional

                return Functional.from_config(config)
            return super().from_config(config)

    def to_json(self, **kwargs):
        """The architecture as a JSON string (``models.model_from_json`` reads it back);
        ``kwargs`` go to ``json.dumps``."""
        import json

        return json.dumps(registry.serialize(self), **kwargs)


def _layer_range(layers, layer_range, owner):
    """The layers from the one named layer_range[0] to the one named layer_range[1]."""
    if not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2:
        raise ValueError(
            f"{owner}.summary: layer_range must be (first layer name, last layer name), got "
            f"{layer_range!r}"
        )
    names = [layer.name for layer in layers]
    ends = []
    for name in layer_range:
        if name not in names:
            raise ValueError(f"{owner}.summary: layer_range names {name!r}; the layers are {names}")
        ends.append(names.index(name))
    return layers[ends[0] : ends[1] + 1]
