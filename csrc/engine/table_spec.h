// Which table a reader reads and how its columns map to outputs, with the CQL identifier rules
// that keep arguments from ever injecting CQL.
#pragma once

#include <string>

namespace cassandra_dali {

enum class LabelType { kInt, kBlob, kNone };

// "int", "blob" (alias "image", the reference project's older name) or "none".
LabelType ParseLabelType(const std::string &text);

struct TableSpec {
  std::string keyspace;
  std::string table;
  std::string id_col;
  std::string data_col;
  std::string label_col;
  LabelType label_type = LabelType::kInt;
  std::string checksum_col;  // int column holding each sample's CRC32C; empty: not verified

  std::string QualifiedName() const { return keyspace + "." + table; }
};

// Cassandra's rules differ by what is named: keyspace and table names are \w+ of at most 48
// characters, quoted or not (they name directories); column names only follow CQL's identifier
// syntax, of any length.
enum class IdentifierKind { kKeyspaceOrTable, kColumn };

// Validates one identifier and returns its canonical form: unquoted names are case-insensitive
// (lower-cased), quoted ones keep their case. `what` names the argument in errors.
std::string CanonicalIdentifier(const std::string &name, const std::string &what,
                                IdentifierKind kind = IdentifierKind::kColumn);

// Builds a TableSpec from the operator's arguments; `table` is "keyspace.table". Anything that
// is not a valid identifier is refused, naming the argument and the rule.
TableSpec MakeTableSpec(const std::string &table, const std::string &id_col,
                        const std::string &data_col, const std::string &label_col,
                        const std::string &label_type, const std::string &checksum_col = "");

}  // namespace cassandra_dali
