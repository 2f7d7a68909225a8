#include "testing/check.h"

#include <exception>

namespace cassandra_dali::testing {
namespace {

int g_passed = 0, g_failed = 0;
int g_case_failures = 0;
std::string g_case;

}  // namespace

std::vector<Case> &Cases() {
  static std::vector<Case> cases;
  return cases;
}

void RecordFailure(const char *file, int line, const std::string &what) {
  std::fprintf(stderr, "FAIL [%s] %s:%d: %s\n", g_case.c_str(), file, line, what.c_str());
  ++g_case_failures;
}

void Run(const std::string &name, const std::function<void()> &body) {
  g_case = name;
  g_case_failures = 0;
  try {
    body();
  } catch (const std::exception &e) {
    RecordFailure(__FILE__, __LINE__, std::string("threw: ") + e.what());
  }
  if (g_case_failures) {
    ++g_failed;
  } else {
    ++g_passed;
    std::printf("ok   %s\n", name.c_str());
  }
  std::fflush(stdout);
}

int Summary() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

int RunAll(const std::string &filter) {
  for (const auto &c : Cases()) {
    if (filter.empty() || std::string(c.name).find(filter) != std::string::npos) {
      Run(c.name, c.body);
    }
  }
  return Summary();
}

}  // namespace cassandra_dali::testing
