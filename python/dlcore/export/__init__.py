"""Exporting models for deployment: ``model.export(path, format="onnx")`` (Keras 3's
spelling) writes an ONNX file (:mod:`.onnx`); it needs the onnx package
(``pip install 'dlcore[onnx]'``)."""

from __future__ import annotations

__all__ = ["FORMATS", "export_model"]

FORMATS = ("onnx",)


def export_model(model, filepath, format="onnx"):
    """Writes ``model``'s inference graph to ``filepath`` in ``format``."""
    if format not in FORMATS:
        raise ValueError(
            f"export: format {format!r} is not one dlcore writes; it writes {list(FORMATS)}"
        )
    from .onnx import export_onnx

    return export_onnx(model, filepath)
