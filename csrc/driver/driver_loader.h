// Loads the DataStax C/C++ driver at run time and exposes its functions as one table.
#pragma once

#include <string>
#include <vector>

#include "driver/cassandra_api.h"

namespace cassandra_dali {

// The required functions are never null once loaded; the optional ones
// (CASS_DALI_OPTIONAL_FUNCTIONS) are null where the library lacks them.
struct DriverApi {
#define CASS_DALI_DECLARE_POINTER(name, ret, params) ret(*name) params = nullptr;
  CASS_DALI_DRIVER_FUNCTIONS(CASS_DALI_DECLARE_POINTER)
  CASS_DALI_OPTIONAL_FUNCTIONS(CASS_DALI_DECLARE_POINTER)
#undef CASS_DALI_DECLARE_POINTER

  // The ring's functions the library lacks, comma-separated; "" when it has them all.
  std::string MissingRingFunctions() const;
  // The hedges' functions the library lacks; "" when it has them.
  std::string MissingHedgeFunctions() const;
};

struct DriverInfo {
  bool loaded = false;
  std::string path;      // the file dlopen resolved (or the name passed to it)
  std::string provider;  // "explicit", "environment", "system", "acsylla"
  std::vector<std::string> missing_optional;  // optional functions the library lacks
};

// Registers the driver copy carried by the `acsylla` wheel (the last resort in the search order).
// The Python package calls this on import.
void SetBundledDriverPath(const std::string &path);

// Loads the driver once per process and returns its function table. Search order:
// `explicit_path` (an operator argument), $CASSANDRA_DALI_DRIVER, the system's
// libcassandra.so.2, the bundled acsylla copy. Throws DriverLoadError naming every candidate
// tried, or the missing required symbol (optional ones are left null). A later call with a
// different explicit path is an error.
const DriverApi &LoadDriver(const std::string &explicit_path = "");

// Installs a function table as the loaded driver: the engine's tests put a fake driver behind
// it (reads that never end, fail at once, or land from other threads). Once per process,
// before any LoadDriver.
void InstallDriverForTesting(const DriverApi &api);

// The already-loaded table; call only after LoadDriver succeeded (handles and sessions do).
const DriverApi &Driver();

DriverInfo LoadedDriverInfo();

}  // namespace cassandra_dali
