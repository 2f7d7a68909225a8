#!/usr/bin/env bash
# `make sanitize`: the engine, the DALI plugin and the Python module built with AddressSanitizer
# and UndefinedBehaviorSanitizer (build-sanitize/); the engine's own test binary (engine_test,
# against a fake driver: stuck, late and synchronous reads) runs first, then the reader's tests
# run against that build: Python itself is not instrumented, so libasan is preloaded and the package is put first
# on the path (python -S: the editable install's import hook stays out of the way).
#   tests/sanitize/run.sh [PYTEST ARGS...]     default: the reader, error, order, fault and
#                                              elastic-resume tests
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
build=build-sanitize
pkg=$build/pkg
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSKBUILD_PROJECT_NAME=cassandra_dali -DSKBUILD_PROJECT_VERSION=0.1.0 \
  -DPython_EXECUTABLE="$PWD/$py" -Dpybind11_DIR="$($py -m pybind11 --cmakedir)" \
  -DCASSANDRA_DALI_TESTS=ON \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
cmake --build "$build" > "$build/build.log" || { tail -30 "$build/build.log"; exit 1; }
ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  "$build/engine_test"
rm -rf "$pkg" && mkdir -p "$pkg"
cp -r python/cassandra_dali "$pkg/"
cp "$build"/*.so "$pkg/cassandra_dali/"
site=$($py -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then  # only options given: the default tests, with them
  set -- tests/test_reader.py tests/test_reader_errors.py tests/test_sample_order.py \
         tests/test_faults.py tests/test_elastic_resume.py tests/test_bad_samples.py \
         -p no:cacheprovider "$@"
fi
# Leaks: CPython and DALI keep memory for the process's life by design; everything else fails.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# libstdc++ preloaded too, so that ASan's __cxa_throw interceptor finds the real one.
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so.6)" PYTHONPATH="$PWD/$pkg:$site:$PWD/tests" \
  $py -S -m pytest --rootdir=. -c pyproject.toml "$@"
