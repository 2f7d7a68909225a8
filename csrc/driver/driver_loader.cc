#include "driver/driver_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/errors.h"
#include "engine/uuid.h"

namespace cassandra_dali {
namespace {

struct LoaderState {
  std::mutex mutex;
  std::string bundled_path;
  DriverApi api;
  DriverInfo info;
};

LoaderState &State() {
  static LoaderState *state = new LoaderState();  // never destroyed: driver threads outlive main
  return *state;
}

struct Candidate {
  std::string provider;
  std::string path;
};

std::vector<Candidate> Candidates(const std::string &explicit_path, const std::string &bundled) {
  std::vector<Candidate> out;
  if (!explicit_path.empty()) out.push_back({"explicit", explicit_path});
  if (const char *env = std::getenv("CASSANDRA_DALI_DRIVER"); env && *env) {
    out.push_back({"environment", env});
  }
  out.push_back({"system", "libcassandra.so.2"});
  out.push_back({"system", "libscylla-cpp-driver.so.2"});
  if (!bundled.empty()) out.push_back({"acsylla", bundled});
  return out;
}

// Resolves every function: a missing required one is an error naming it, a missing optional
// one stays null and is listed in `missing_optional`.
void ResolveAll(void *handle, const std::string &path, DriverApi &api,
                std::vector<std::string> &missing_optional) {
#define CASS_DALI_RESOLVE(name, ret, params)                                                  \
  api.name = reinterpret_cast<ret(*) params>(dlsym(handle, #name));                          \
  if (!api.name) {                                                                            \
    throw DriverLoadError("the Cassandra driver at '" + path + "' has no symbol '" #name      \
                          "': it is not a DataStax C/C++ driver (2.x) build");                \
  }
  CASS_DALI_DRIVER_FUNCTIONS(CASS_DALI_RESOLVE)
#undef CASS_DALI_RESOLVE
#define CASS_DALI_RESOLVE_OPTIONAL(name, ret, params)                                         \
  api.name = reinterpret_cast<ret(*) params>(dlsym(handle, #name));                          \
  if (!api.name) missing_optional.push_back(#name);
  CASS_DALI_OPTIONAL_FUNCTIONS(CASS_DALI_RESOLVE_OPTIONAL)
#undef CASS_DALI_RESOLVE_OPTIONAL
}

// Our UUID byte layout must agree with the driver's: check once, at load.
void CheckUuidLayout(const DriverApi &api, const std::string &path) {
  const char *text = "00112233-4455-6677-8899-aabbccddeeff";
  CassUuid from_driver{};
  if (api.cass_uuid_from_string(text, &from_driver) != CASS_OK) {
    throw DriverLoadError("the Cassandra driver at '" + path + "' rejected a valid UUID");
  }
  CassUuid ours = ToCassUuid(*ParseUuid(text));
  if (ours.time_and_version != from_driver.time_and_version ||
      ours.clock_seq_and_node != from_driver.clock_seq_and_node) {
    throw DriverLoadError("the Cassandra driver at '" + path +
                          "' lays out UUIDs differently from this build of cassandra-dali");
  }
}

void SetDriverLogLevel(const DriverApi &api) {
  // The driver logs to stderr; our exceptions carry its messages, so only critical ones unless
  // asked ($CASSANDRA_DALI_DRIVER_LOG: error, warn, info, debug).
  CassLogLevel level = CASS_LOG_CRITICAL;
  if (const char *env = std::getenv("CASSANDRA_DALI_DRIVER_LOG"); env) {
    std::string v = env;
    if (v == "disabled") level = CASS_LOG_DISABLED;
    if (v == "error") level = CASS_LOG_ERROR;
    if (v == "warn") level = CASS_LOG_WARN;
    if (v == "info") level = CASS_LOG_INFO;
    if (v == "debug") level = CASS_LOG_DEBUG;
  }
  api.cass_log_set_level(level);
}

}  // namespace

// The names, comma-separated, of a group of optional functions the loaded driver lacks.
#define CASS_DALI_LIST_MISSING(name, ret, params) \
  if (!name) missing += (missing.empty() ? "" : ", ") + std::string(#name);

std::string DriverApi::MissingRingFunctions() const {
  std::string missing;
  CASS_DALI_RING_FUNCTIONS(CASS_DALI_LIST_MISSING)
  return missing;
}

std::string DriverApi::MissingHedgeFunctions() const {
  std::string missing;
  CASS_DALI_HEDGE_FUNCTIONS(CASS_DALI_LIST_MISSING)
  return missing;
}
#undef CASS_DALI_LIST_MISSING

void SetBundledDriverPath(const std::string &path) {
  std::lock_guard<std::mutex> lock(State().mutex);
  State().bundled_path = path;
}

const DriverApi &LoadDriver(const std::string &explicit_path) {
  auto &state = State();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (state.info.loaded) {
    if (!explicit_path.empty() && explicit_path != state.info.path) {
      throw DriverLoadError("driver_path '" + explicit_path + "' was requested, but the driver '" +
                            state.info.path + "' is already loaded in this process");
    }
    return state.api;
  }
  std::string tried;
  for (const auto &candidate : Candidates(explicit_path, state.bundled_path)) {
    dlerror();
    // RTLD_LOCAL: the driver's bundled OpenSSL must not leak into the global namespace.
    void *handle = dlopen(candidate.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *why = dlerror();
      tried += "\n  " + candidate.provider + ": " + candidate.path + " (" +
               (why ? why : "not found") + ")";
      if (candidate.provider == "explicit" || candidate.provider == "environment") break;
      continue;
    }
    DriverApi api;
    std::vector<std::string> missing_optional;
    ResolveAll(handle, candidate.path, api, missing_optional);
    CheckUuidLayout(api, candidate.path);
    SetDriverLogLevel(api);
    state.api = api;
    state.info = {true, candidate.path, candidate.provider, std::move(missing_optional)};
    return state.api;
  }
  throw DriverLoadError(
      "cannot load the DataStax C/C++ Cassandra driver; tried:" + tried +
      "\nInstall libcassandra.so.2 (DataStax C/C++ driver 2.x), or set CASSANDRA_DALI_DRIVER to "
      "its path. The copy carried by the 'acsylla' wheel loads only inside a Python process "
      "(it needs the Python runtime's symbols); hosts such as Triton's C++ DALI backend need a "
      "real libcassandra.so.2.");
}

void InstallDriverForTesting(const DriverApi &api) {
  auto &state = State();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (state.info.loaded) throw DriverLoadError("a driver is already loaded in this process");
  state.api = api;
  state.info = {true, "(in-process fake)", "test", {}};
}

const DriverApi &Driver() {
  auto &state = State();
  if (!state.info.loaded) throw DriverLoadError("the Cassandra driver is not loaded yet");
  return state.api;
}

DriverInfo LoadedDriverInfo() {
  std::lock_guard<std::mutex> lock(State().mutex);
  return State().info;
}

}  // namespace cassandra_dali
