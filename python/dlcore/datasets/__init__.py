"""Datasets in the forms Keras' loaders return them."""

from dlcore.datasets import mnist

__all__ = ["mnist"]
