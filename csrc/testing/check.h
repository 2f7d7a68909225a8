// A minimal test harness for the C++ test binaries (no test framework is installable here):
// cases register themselves, CHECK fails the current case, and the runner prints one line per
// case and "N passed, N failed" at the end.
//   TEST_CASE(SampleBufferReuse, "slots are reused") { CHECK(...); }
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace cassandra_dali::testing {

struct Case {
  const char *name;
  void (*body)();
};

std::vector<Case> &Cases();

struct Registration {
  Registration(const char *name, void (*body)()) { Cases().push_back({name, body}); }
};

// Counts a failed check of the running case.
void RecordFailure(const char *file, int line, const std::string &what);

// Runs the registered cases whose name contains `filter` ("" for all); 0 if every one passed.
int RunAll(const std::string &filter = "");

// Runs one case now (for binaries that build their cases from data).
void Run(const std::string &name, const std::function<void()> &body);
int Summary();  // prints "N passed, N failed"; 0 if none failed

// The message of the E that `fn` throws, or "" when it throws none.
template <typename E, typename Fn>
std::string ThrownMessage(Fn &&fn) {
  try {
    fn();
  } catch (const E &e) {
    return e.what();
  }
  return "";
}

}  // namespace cassandra_dali::testing

#define TEST_CASE(fn, name)                                                    \
  static void fn();                                                            \
  static const ::cassandra_dali::testing::Registration fn##_registration(name, \
                                                                         fn);  \
  static void fn()

// Fails the running case and returns from the calling void function.
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      ::cassandra_dali::testing::RecordFailure(__FILE__, __LINE__, #cond);       \
      return;                                                                    \
    }                                                                            \
  } while (0)
