// Exception types raised by the engine. Each message names the culprit (UUID, table, column,
// host:port, file) so that a user can act on it without reading logs.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace cassandra_dali {

// User input as it may appear in a message: control characters and bytes outside printable
// ASCII as \xNN (a NUL would cut the message short, invalid UTF-8 would make Python fail to
// decode it), at most `max_chars` of it.
std::string Printable(std::string_view text, size_t max_chars = 80);

// Base class: everything the engine raises on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad arguments: identifiers, UUID strings, shard numbers, empty lists.
class ArgumentError : public Error {
 public:
  using Error::Error;
};

// The driver library could not be found or is missing a symbol.
class DriverLoadError : public Error {
 public:
  using Error::Error;
};

// Connection, authentication or TLS failure.
class ConnectionError : public Error {
 public:
  using Error::Error;
};

// The keyspace, table or a column does not exist, or has the wrong type.
class SchemaError : public Error {
 public:
  using Error::Error;
};

// A requested UUID has no row in the table.
class MissingRowError : public Error {
 public:
  using Error::Error;
};

// A read failed (timeout after retries, server error, null value).
class ReadError : public Error {
 public:
  using Error::Error;
};

}  // namespace cassandra_dali
