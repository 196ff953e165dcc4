# Chooses the instruction-set flags for the kernels (DLCORE_ARCH -> DLCORE_ARCH_FLAGS).
#
# Measured on an AMD EPYC (Zen 3): Eigen's SGEMM built with -march=native, which also
# brings -mtune=znver3, ran 25-30% slower than -mavx2 -mfma with generic tuning, so
# "auto" picks the latter whenever the build machine can run it. Use "generic" (or
# "x86-64-v2") to build a wheel that runs on any x86-64 CPU.
include(CheckCXXSourceRuns)
include(CheckCXXCompilerFlag)

set(_arch "${DLCORE_ARCH}")
if(_arch STREQUAL "auto")
  set(_arch "generic")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND NOT CMAKE_CROSSCOMPILING)
    set(CMAKE_REQUIRED_FLAGS "-mavx2 -mfma")
    check_cxx_source_runs([=[
      int main() {
        __builtin_cpu_init();
        return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 0 : 1;
      }]=] DLCORE_HOST_HAS_AVX2_FMA)
    unset(CMAKE_REQUIRED_FLAGS)
    if(DLCORE_HOST_HAS_AVX2_FMA)
      set(_arch "avx2")
    endif()
  endif()
endif()

if(_arch STREQUAL "avx2")
  set(DLCORE_ARCH_FLAGS -mavx2 -mfma)
elseif(_arch STREQUAL "x86-64-v3")
  set(DLCORE_ARCH_FLAGS -march=x86-64-v3 -mtune=generic)
elseif(_arch STREQUAL "x86-64-v2")
  set(DLCORE_ARCH_FLAGS -march=x86-64-v2 -mtune=generic)
elseif(_arch STREQUAL "native")
  set(DLCORE_ARCH_FLAGS -march=native)
elseif(_arch STREQUAL "generic")
  set(DLCORE_ARCH_FLAGS "")
else()
  message(FATAL_ERROR "DLCORE_ARCH='${DLCORE_ARCH}' is not one of auto, avx2, x86-64-v3, x86-64-v2, native, generic")
endif()

if(DLCORE_ARCH_FLAGS)
  string(REPLACE ";" " " _flags "${DLCORE_ARCH_FLAGS}")
  check_cxx_compiler_flag("${_flags}" DLCORE_COMPILER_TAKES_ARCH_FLAGS_${_arch})
  if(NOT DLCORE_COMPILER_TAKES_ARCH_FLAGS_${_arch})
    message(FATAL_ERROR "DLCORE_ARCH=${_arch}: the compiler rejects '${_flags}'")
  endif()
endif()
set(DLCORE_ARCH_RESOLVED "${_arch}")
