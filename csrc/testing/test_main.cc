// main() of the engine's test binary: `engine_test [FILTER]` runs the cases whose name holds
// FILTER, all by default.
#include <string>

#include "testing/check.h"

int main(int argc, char **argv) {
  return ::cassandra_dali::testing::RunAll(argc > 1 ? argv[1] : "");
}
