// Memory for the kernels' output arrays, reused across calls (private to the bindings).
//
// A freed NumPy array of a few MB goes back to the system (glibc unmaps it or trims the
// heap's top), so the next array of that size faults every page in again, each zeroed
// by the kernel. A training step re-creates the same activations and gradients every
// time, and those faults cost more than the kernels that fill them: BatchNormalization's
// fwd+bwd on 12.8 MB took 8 ms in a loop against 2.9 ms with the memory kept. Arrays of
// kMinBytes and more therefore take a block from this cache and give it back when NumPy
// frees them; smaller ones are NumPy's own.
//
// The cache holds at most a limit of bytes that no array uses (DLCORE_ARRAY_CACHE_MB,
// default 1 GiB or an eighth of the machine's memory if less; 0 turns it off), dropping
// the least recently freed blocks first. A request takes the smallest free block that
// fits and is at most twice its size (a short last batch reuses a full batch's blocks).
// Sanitizer builds start with it off, so that a use after free is still reported.
#pragma once

#include <pybind11/numpy.h>

#include <cstdint>
#include <vector>

namespace dlcore::bind {

namespace py = pybind11;

// A new C-contiguous array of `dtype`, uninitialised or zeroed, its memory from the
// cache when large enough (zeroed then on the kernels' threads) and NumPy's otherwise.
py::array cached_array(const std::vector<int64_t>& shape, const py::dtype& dtype,
                       bool zeroed = false);

}  // namespace dlcore::bind
