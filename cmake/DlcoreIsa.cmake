# Instruction-set levels (DLCORE_ISA_LEVELS -> DLCORE_LEVELS).
#
# The kernels, their bindings and the Eigen code inside them are compiled once per level,
# each into an extension module of its own, dlcore/_core_<level>. A small probe module
# built without any instruction-set flag, dlcore/_cpu, reads the CPU's features (cpuid,
# and xgetbv for the OS's register state), and python/dlcore/_isa.py imports the best
# level the CPU can run, once, when dlcore is imported. DLCORE_ISA=<level> forces one.
#
# A level is a name, its compiler flags, and the CPU features it needs at run time (the
# names dlcore._cpu.features() reports). Levels are listed best first.
#
# x86-64:
#   avx2      -mavx2 -mfma (MSVC: /arch:AVX2); needs AVX2, FMA and the OS's AVX state.
#             Generic tuning on purpose: on AMD Zen 3, -march=native (which brings
#             -mtune=znver3) or -march=x86-64-v3 made Eigen's SGEMM slower, and the
#             x86-64-v3 extras (BMI, LZCNT, MOVBE) do nothing for these kernels while
#             narrowing the CPUs that could run the level.
#   baseline  -march=x86-64-v2 -mtune=generic (SSE4.2, POPCNT, CX16); MSVC's default
#             (SSE2). Every x86-64 CPU since 2009, and the level NumPy requires too.
#   avx512    -mavx512f -mavx512cd -mavx512bw -mavx512dq -mavx512vl (x86-64-v4) with
#             AVX2 and FMA, generic tuning (MSVC: /arch:AVX512); needs those features and
#             the OS's AVX-512 state. Eigen's packets double to 16 floats: on an AMD Zen 5
#             (2 cores) its GEMM ran 1.8-1.9x and the 3x3 convolutions 1.4-1.6x as fast
#             as at the avx2 level.
# Every other architecture (aarch64, macOS arm64, ...): one level, "default", with no
#   instruction-set flag: the compiler's defaults, which on arm64 include NEON (Eigen
#   vectorises with it).
#
# DLCORE_ISA_LEVELS: "auto" (every shipped level of the target architecture), "host"
# (the one best level of those that the build machine runs: a quick development or
# sanitizer build), or a semicolon-separated list of levels, e.g. "avx2;baseline".
set(DLCORE_ISA_LEVELS "auto" CACHE STRING
    "Instruction-set levels to build: auto, host, or a list of avx512, avx2, baseline (x86-64) / default (elsewhere)")

# The target architecture, not the build machine's: macOS builds name theirs in
# CMAKE_OSX_ARCHITECTURES (cibuildwheel cross-builds), MSVC in its architecture id.
set(_target_arch "${CMAKE_SYSTEM_PROCESSOR}")
if(APPLE AND CMAKE_OSX_ARCHITECTURES)
  list(LENGTH CMAKE_OSX_ARCHITECTURES _n_osx_archs)
  if(_n_osx_archs EQUAL 1)
    set(_target_arch "${CMAKE_OSX_ARCHITECTURES}")
  else()
    set(_target_arch "universal")  # one compiler run per architecture: no x86 flags
  endif()
elseif(MSVC AND CMAKE_CXX_COMPILER_ARCHITECTURE_ID)
  set(_target_arch "${CMAKE_CXX_COMPILER_ARCHITECTURE_ID}")
endif()
if(_target_arch MATCHES "^(x86_64|AMD64|amd64|x64|X64)$")
  set(DLCORE_TARGET_X86_64 ON)
else()
  set(DLCORE_TARGET_X86_64 OFF)
endif()

# Flags and run-time requirements of each level.
if(MSVC)
  set(_flags_avx512 /arch:AVX512)
  set(_flags_avx2 /arch:AVX2)
  set(_flags_baseline "")
else()
  set(_flags_avx512 -mavx512f -mavx512cd -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma
                    -mtune=generic)
  set(_flags_avx2 -mavx2 -mfma)
  set(_flags_baseline -march=x86-64-v2 -mtune=generic)
endif()
set(_flags_default "")
set(_needs_avx512 avx512f avx512cd avx512bw avx512dq avx512vl avx2 fma os_avx512)
set(_needs_avx2 avx2 fma os_avx)
set(_needs_baseline sse3 ssse3 sse4_1 sse4_2 popcnt cx16)
set(_needs_default "")

if(DLCORE_TARGET_X86_64)
  set(_known_levels avx512 avx2 baseline)
  set(_auto_levels avx512 avx2 baseline)
else()
  set(_known_levels default)
  set(_auto_levels default)
endif()

if(DLCORE_ISA_LEVELS STREQUAL "auto")
  set(_levels ${_auto_levels})
elseif(DLCORE_ISA_LEVELS STREQUAL "host")
  list(GET _auto_levels -1 _levels)  # the lowest, unless the build machine runs a higher one
  if(DLCORE_TARGET_X86_64 AND NOT CMAKE_CROSSCOMPILING AND NOT MSVC)
    include(CheckCXXSourceRuns)
    set(CMAKE_REQUIRED_FLAGS "${_flags_avx2}")
    string(REPLACE ";" " " CMAKE_REQUIRED_FLAGS "${CMAKE_REQUIRED_FLAGS}")
    check_cxx_source_runs([=[
      int main() {
        __builtin_cpu_init();
        return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 0 : 1;
      }]=] DLCORE_HOST_HAS_AVX2_FMA)
    set(CMAKE_REQUIRED_FLAGS "${_flags_avx512}")
    string(REPLACE ";" " " CMAKE_REQUIRED_FLAGS "${CMAKE_REQUIRED_FLAGS}")
    check_cxx_source_runs([=[
      int main() {
        __builtin_cpu_init();
        return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512vl")) ? 0 : 1;
      }]=] DLCORE_HOST_HAS_AVX512)
    unset(CMAKE_REQUIRED_FLAGS)
    if(DLCORE_HOST_HAS_AVX512)
      set(_levels avx512)
    elseif(DLCORE_HOST_HAS_AVX2_FMA)
      set(_levels avx2)
    endif()
  endif()
else()
  set(_levels ${DLCORE_ISA_LEVELS})
endif()

string(REPLACE ";" ", " _known_levels_text "${_known_levels}")
include(CheckCXXCompilerFlag)
set(DLCORE_LEVELS "")
set(DLCORE_LEVELS_SPEC "")  # "name:need,need|name:..." for the probe, best first
foreach(_level IN ITEMS avx512 avx2 baseline default)  # best first, whatever the order given
  if(NOT _level IN_LIST _levels)
    continue()
  endif()
  if(NOT _level IN_LIST _known_levels)
    message(FATAL_ERROR "DLCORE_ISA_LEVELS: level '${_level}' does not exist for the target "
                        "architecture ${_target_arch}; its levels are: ${_known_levels_text}")
  endif()
  if(_flags_${_level})
    string(REPLACE ";" " " _flags "${_flags_${_level}}")
    string(MAKE_C_IDENTIFIER "${_level}" _id)
    check_cxx_compiler_flag("${_flags}" DLCORE_COMPILER_TAKES_${_id}_FLAGS)
    if(NOT DLCORE_COMPILER_TAKES_${_id}_FLAGS)
      message(FATAL_ERROR "dlcore: the compiler rejects the flags of level ${_level}: '${_flags}'")
    endif()
  endif()
  list(APPEND DLCORE_LEVELS ${_level})
  set(DLCORE_FLAGS_${_level} ${_flags_${_level}})
  string(REPLACE ";" "," _needs "${_needs_${_level}}")
  if(DLCORE_LEVELS_SPEC)
    string(APPEND DLCORE_LEVELS_SPEC "|")
  endif()
  string(APPEND DLCORE_LEVELS_SPEC "${_level}:${_needs}")
endforeach()
foreach(_level IN LISTS _levels)
  if(NOT _level IN_LIST DLCORE_LEVELS)
    message(FATAL_ERROR "DLCORE_ISA_LEVELS: unknown level '${_level}'; the levels of "
                        "${_target_arch} are: ${_known_levels_text}")
  endif()
endforeach()
if(NOT DLCORE_LEVELS)
  message(FATAL_ERROR "DLCORE_ISA_LEVELS is empty; use auto, host or some of: ${_known_levels_text}")
endif()

if(DLCORE_TARGET_X86_64)
  set(DLCORE_ISA_NOTE "x86-64: one module per level, chosen at import")
else()
  set(DLCORE_ISA_NOTE
      "${_target_arch} is not x86-64: no instruction-set flag, the compiler's defaults (NEON on arm64)")
endif()
