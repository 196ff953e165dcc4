"""Plain NumPy references for every kernel, written for clarity rather than speed and
independent of the C++ code: one module per kernel family."""
