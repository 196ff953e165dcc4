# Finds Eigen 3.4: the system's when CMake finds one, otherwise the copy that the
# cmeel-eigen build requirement put into the (isolated) build environment.
find_package(Eigen3 3.4 QUIET NO_MODULE)
if(Eigen3_FOUND)
  # scikit-build-core puts the build environment's site-packages on the prefix path, so
  # the PyPI copy can be found here too; name it for what it is.
  if(Eigen3_DIR MATCHES "cmeel\\.prefix")
    set(DLCORE_EIGEN_SOURCE "pypi")
  else()
    set(DLCORE_EIGEN_SOURCE "system")
  endif()
else()
  if(NOT Python_EXECUTABLE)
    find_package(Python 3.9 REQUIRED COMPONENTS Interpreter)
  endif()
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -m cmeel cmake
    OUTPUT_VARIABLE _cmeel_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET RESULT_VARIABLE _cmeel_rc)
  if(_cmeel_rc EQUAL 0 AND _cmeel_prefix)
    find_package(Eigen3 3.4 REQUIRED NO_MODULE PATHS ${_cmeel_prefix} NO_DEFAULT_PATH)
    set(DLCORE_EIGEN_SOURCE "pypi")
  else()
    message(FATAL_ERROR
      "dlcore needs Eigen 3.4. None was found on the system, and the Python package "
      "cmeel-eigen is not importable by ${Python_EXECUTABLE}. Install one of: "
      "'pip install cmeel-eigen' (pip does this itself for 'pip install .'), or "
      "the system package (e.g. 'apt install libeigen3-dev').")
  endif()
endif()
