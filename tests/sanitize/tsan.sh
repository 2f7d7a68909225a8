#!/usr/bin/env bash
# `make tsan`: the engine and its test binary (csrc/engine/*_test.cc, against the fake driver in
# csrc/testing/) built with ThreadSanitizer in build-tsan/, with no DALI and no Python (whose
# uninstrumented threads would only report noise), then run ROUNDS times: the concurrent cases
# interleave differently each time.
#   tests/sanitize/tsan.sh [ROUNDS]     default 5
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
build=build-tsan
flags="-fsanitize=thread -g -O1"
cmake_bin=$(command -v .venv/bin/cmake || command -v cmake)
generator=()
if command -v ninja > /dev/null || [ -x .venv/bin/ninja ]; then generator=(-G Ninja); fi
PATH="$PWD/.venv/bin:$PATH" "$cmake_bin" -S . -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASSANDRA_DALI_ENGINE_ONLY=ON \
  -DSKBUILD_PROJECT_NAME=cassandra_dali -DSKBUILD_PROJECT_VERSION=0.1.0 \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" > /dev/null
PATH="$PWD/.venv/bin:$PATH" "$cmake_bin" --build "$build" --target engine_test > "$build/build.log" \
  || { tail -30 "$build/build.log"; exit 1; }
# A report fails the run at once (exit 66), with both stacks of a race.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
for round in $(seq 1 "$rounds"); do
  echo "== engine_test under ThreadSanitizer, round $round of $rounds"
  "$build/engine_test"
done
