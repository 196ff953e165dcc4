// One registration function per kernel family; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace dlcore::bind {

void register_array_cache(pybind11::module_& m);
void register_gemm(pybind11::module_& m);
void register_optim(pybind11::module_& m);
void register_eltwise(pybind11::module_& m);
void register_conv2d(pybind11::module_& m);
void register_pool(pybind11::module_& m);
void register_lstm(pybind11::module_& m);
void register_activation(pybind11::module_& m);
void register_norm(pybind11::module_& m);
void register_embedding(pybind11::module_& m);
void register_gru(pybind11::module_& m);
void register_simple_rnn(pybind11::module_& m);
void register_softmax(pybind11::module_& m);

}  // namespace dlcore::bind
