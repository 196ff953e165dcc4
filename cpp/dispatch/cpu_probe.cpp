// dlcore._cpu: the instruction-set extensions this CPU and its OS support, and the levels
// this build has. python/dlcore/_isa.py reads them to choose which dlcore._core_<level>
// module to import. Built without any instruction-set flag, so it runs on every CPU of
// the architecture, including one that cannot run any level.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#define DLCORE_PROBE_X86_64 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace py = pybind11;

namespace {

#ifdef DLCORE_PROBE_X86_64
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned subleaf) {
  Regs r;
#if defined(_MSC_VER)
  int v[4];
  __cpuidex(v, static_cast<int>(leaf), static_cast<int>(subleaf));
  r.a = unsigned(v[0]), r.b = unsigned(v[1]), r.c = unsigned(v[2]), r.d = unsigned(v[3]);
#else
  __cpuid_count(leaf, subleaf, r.a, r.b, r.c, r.d);
#endif
  return r;
}

// XCR0: which register states the OS saves on a context switch. Only valid when CPUID
// reports OSXSAVE; without the OS's support the AVX registers cannot be used at all.
unsigned long long xcr0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
#endif
}

bool bit(unsigned word, int n) { return (word >> n) & 1u; }
#endif

std::map<std::string, bool> features() {
  std::map<std::string, bool> f;
#ifdef DLCORE_PROBE_X86_64
  const unsigned max_leaf = cpuid(0, 0).a;
  const Regs l1 = cpuid(1, 0);
  f["sse2"] = bit(l1.d, 26);
  f["sse3"] = bit(l1.c, 0);
  f["ssse3"] = bit(l1.c, 9);
  f["fma"] = bit(l1.c, 12);
  f["cx16"] = bit(l1.c, 13);
  f["sse4_1"] = bit(l1.c, 19);
  f["sse4_2"] = bit(l1.c, 20);
  f["movbe"] = bit(l1.c, 22);
  f["popcnt"] = bit(l1.c, 23);
  f["avx"] = bit(l1.c, 28);
  f["f16c"] = bit(l1.c, 29);
  const bool osxsave = bit(l1.c, 27);
  const unsigned long long xcr = osxsave ? xcr0() : 0;
  // SSE and AVX state (bits 1, 2); for AVX-512 also opmask, ZMM0-15 upper, ZMM16-31 (5-7).
  f["os_avx"] = osxsave && (xcr & 0x6) == 0x6;
  f["os_avx512"] = osxsave && (xcr & 0xe6) == 0xe6;
  const Regs l7 = max_leaf >= 7 ? cpuid(7, 0) : Regs{};
  f["bmi1"] = bit(l7.b, 3);
  f["avx2"] = bit(l7.b, 5);
  f["bmi2"] = bit(l7.b, 8);
  f["avx512f"] = bit(l7.b, 16);
  f["avx512dq"] = bit(l7.b, 17);
  f["avx512cd"] = bit(l7.b, 28);
  f["avx512bw"] = bit(l7.b, 30);
  f["avx512vl"] = bit(l7.b, 31);
  const unsigned max_ext = cpuid(0x80000000u, 0).a;
  const Regs e1 = max_ext >= 0x80000001u ? cpuid(0x80000001u, 0) : Regs{};
  f["lahf_lm"] = bit(e1.c, 0);
  f["lzcnt"] = bit(e1.c, 5);
#endif
  return f;
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "The CPU's instruction-set extensions and the levels of this dlcore build.";
#ifdef DLCORE_PROBE_X86_64
  m.attr("architecture") = "x86_64";
#else
  m.attr("architecture") = "other";
#endif
  // "name:feature,feature|name:..." best first, written by cmake/DlcoreIsa.cmake.
  m.attr("levels_spec") = DLCORE_LEVELS_SPEC_STRING;
  m.def("features", &features,
        "The CPU's instruction-set extensions, by name, with the OS's support for the AVX "
        "(os_avx) and AVX-512 (os_avx512) registers. Empty on a CPU that is not x86-64.");
}
