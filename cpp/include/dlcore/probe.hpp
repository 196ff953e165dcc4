// The machine's fp32 ceiling, measured: independent FMA chains on every thread.
#pragma once

namespace dlcore {

// GFLOP/s of float FMAs (2 flops each) sustained by `threads` threads for about
// `seconds`, with enough independent accumulators to cover the FMA latency.
double peak_gflops(int threads, double seconds);

}  // namespace dlcore
