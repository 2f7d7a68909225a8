// The arguments both faces of the reader take (table, connection, reads), declared once: the
// DALI schema `crs4__cassandra_base` and the Python `Reader`'s signature are made from this list,
// and SettingsFromArguments fills the engine's option structs from it. A test checks the
// Python stub (_native.pyi) against it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "engine/batch_fetcher.h"
#include "engine/session.h"

namespace cassandra_dali {

// The default's alternative is the argument's type.
using ArgValue = std::variant<bool, int, int64_t, std::string, std::vector<std::string>>;

struct ArgumentDecl {
  const char *name;
  ArgValue default_value;
  const char *doc;
  bool required = false;  // no default (the table)
  bool python = true;     // false: the DALI operators only (compatibility arguments)
};

const std::vector<ArgumentDecl> &ReaderArguments();

struct ReaderSettings {
  TableSpec table;
  ConnectionOptions connection;
  FetchOptions fetch;
};

// `value(decl)` gives the value passed for decl.name, or decl.default_value. Throws
// ArgumentError for values no reader accepts.
ReaderSettings SettingsFromArguments(const std::function<ArgValue(const ArgumentDecl &)> &value);

}  // namespace cassandra_dali
