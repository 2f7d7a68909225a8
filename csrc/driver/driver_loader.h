// Loads the DataStax C/C++ driver at run time and exposes its functions as one table.
#pragma once

#include <string>

#include "driver/cassandra_api.h"

namespace cassandra_dali {

struct DriverApi {
#define CASS_DALI_DECLARE_POINTER(name, ret, params) ret(*name) params = nullptr;
  CASS_DALI_DRIVER_FUNCTIONS(CASS_DALI_DECLARE_POINTER)
#undef CASS_DALI_DECLARE_POINTER
};

struct DriverInfo {
  bool loaded = false;
  std::string path;      // the file dlopen resolved (or the name passed to it)
  std::string provider;  // "explicit", "environment", "system", "acsylla"
};

// Registers the driver copy carried by the `acsylla` wheel (the last resort in the search order).
// The Python package calls this on import.
void SetBundledDriverPath(const std::string &path);

// Loads the driver once per process and returns its function table. Search order:
// `explicit_path` (an operator argument), $CASSANDRA_DALI_DRIVER, the system's
// libcassandra.so.2, the bundled acsylla copy. Throws DriverLoadError naming every candidate
// tried, or the missing symbol. A later call with a different explicit path is an error.
const DriverApi &LoadDriver(const std::string &explicit_path = "");

// The already-loaded table; call only after LoadDriver succeeded (handles and sessions do).
const DriverApi &Driver();

DriverInfo LoadedDriverInfo();

}  // namespace cassandra_dali
