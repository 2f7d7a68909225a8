# Locates DALI's headers and library, and the CUDA headers DALI's headers include, inside the
# Python environment's wheels (nvidia-dali-cuda120 and the nvidia-cuda-*-cu12 header wheels), so
# that the CPU operator compiles with plain g++ and no CUDA toolkit.
#
# Defines the imported target dali::dali and DALI_VERSION.

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c [=[
import importlib.util, os, nvidia.dali as d, nvidia.dali.sysconfig as s
def inc(mod):
    spec = importlib.util.find_spec(mod)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"missing wheel providing {mod}")
    return os.path.join(list(spec.submodule_search_locations)[0], "include")
flags = [f for f in s.get_compile_flags() if not f.startswith("-I")]
print(";".join([d.__version__, s.get_include_dir(), s.get_lib_dir(), " ".join(flags),
                inc("nvidia.cuda_runtime"), inc("nvidia.cuda_nvcc"), inc("nvidia.cuda_cccl"),
                inc("nvidia.curand")]))
]=]
  OUTPUT_VARIABLE _dali_out
  ERROR_VARIABLE _dali_err
  RESULT_VARIABLE _dali_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _dali_rc EQUAL 0)
  message(FATAL_ERROR "Cannot locate DALI and the CUDA header wheels with ${Python_EXECUTABLE}:\n"
                      "${_dali_err}\nInstall the build requirements listed in pyproject.toml.")
endif()
list(GET _dali_out 0 DALI_VERSION)
list(GET _dali_out 1 _dali_include)
list(GET _dali_out 2 _dali_libdir)
list(GET _dali_out 3 _dali_flags)
list(GET _dali_out 4 _cuda_runtime_include)
list(GET _dali_out 5 _cuda_nvcc_include)
list(GET _dali_out 6 _cuda_cccl_include)
list(GET _dali_out 7 _curand_include)
separate_arguments(_dali_flags UNIX_COMMAND "${_dali_flags}")

find_library(DALI_LIBRARY NAMES dali PATHS "${_dali_libdir}" NO_DEFAULT_PATH REQUIRED)
add_library(dali::dali SHARED IMPORTED)
set_target_properties(dali::dali PROPERTIES
  IMPORTED_LOCATION "${DALI_LIBRARY}"
  IMPORTED_NO_SONAME TRUE)
# CUDA headers are system includes: their warnings are not ours.
target_include_directories(dali::dali SYSTEM INTERFACE
  "${_dali_include}" "${_cuda_runtime_include}" "${_cuda_nvcc_include}"
  "${_cuda_cccl_include}" "${_curand_include}")
target_compile_options(dali::dali INTERFACE ${_dali_flags})
message(STATUS "DALI ${DALI_VERSION}: ${DALI_LIBRARY}")
