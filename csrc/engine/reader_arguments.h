// Every argument of the readers, declared once with its default and doc: the DALI schemas
// (`crs4__cassandra_base` and the self-feed arguments of `crs4__cassandra`), the Python
// `Reader`'s signature and `_native.reader_arguments()` are made from this list, and the
// *FromArguments functions fill the engine's option structs from it (the structs hold no
// defaults of their own). Tests check the Python stub and docs/reader.md against it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/batch_fetcher.h"
#include "engine/loaders.h"
#include "engine/session.h"

namespace cassandra_dali {

// The default's alternative is the argument's type.
using ArgValue = std::variant<bool, int, int64_t, std::string, std::vector<std::string>>;

// Who takes an argument.
enum class ArgScope {
  kReader,     // both DALI operators and the Python Reader
  kOperators,  // both DALI operators (compatibility arguments, telemetry_name, prefetch_buffers)
  kSelfFeed,   // fn.crs4.cassandra only: the list it walks, its shards, order and read-ahead
};
const char *ArgScopeName(ArgScope scope);  // "reader", "operators", "self_feed"

struct ArgumentDecl {
  const char *name;
  ArgValue default_value;
  const char *doc;
  bool required = false;  // no default (the table)
  ArgScope scope = ArgScope::kReader;
};

const std::vector<ArgumentDecl> &ReaderArguments();
// The declaration of `name` (a programming error, std::logic_error, if there is none).
const ArgumentDecl &DeclaredArgument(const char *name);

// The value passed for an argument, or nullopt when it was left out (its default applies).
using ArgumentSource = std::function<std::optional<ArgValue>(const ArgumentDecl &)>;

struct ReaderSettings {
  TableSpec table;
  ConnectionOptions connection;
  FetchOptions fetch;
};

// The table, connection and read settings (ArgScope kReader and kOperators). Throws
// ArgumentError, naming the argument, for values no reader accepts.
ReaderSettings SettingsFromArguments(const ArgumentSource &value);

// What fn.crs4.cassandra walks and how (ArgScope kSelfFeed, and prefetch_buffers).
struct SelfFeedSettings {
  std::vector<std::string> source_uuids;
  std::string rows_file;
  int shard_id = 0;
  int num_shards = 0;
  bool shuffle_every_epoch = false;
  uint64_t shuffle_seed = 0;
  bool loop_forever = false;
  PrefetchLimits prefetch;
  BadSamplePolicy on_bad_sample = BadSamplePolicy::kError;
  std::string quarantine_file;  // empty: DefaultQuarantinePath
};
SelfFeedSettings SelfFeedSettingsFromArguments(const ArgumentSource &value);

// Every argument at its default (the table given): what the structs hold when nothing is passed.
ReaderSettings DefaultReaderSettings(const std::string &table);

}  // namespace cassandra_dali
