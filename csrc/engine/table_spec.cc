#include "engine/table_spec.h"

#include <cctype>

#include "engine/errors.h"

namespace cassandra_dali {

LabelType ParseLabelType(const std::string &text) {
  if (text == "int") return LabelType::kInt;
  if (text == "blob" || text == "image") return LabelType::kBlob;
  if (text == "none") return LabelType::kNone;
  throw ArgumentError("label_type '" + Printable(text) +
                      "' is not one of 'int', 'blob' ('image'), 'none'");
}

namespace {

constexpr size_t kMaxKeyspaceOrTableName = 48;

bool IsWordChar(unsigned char c) { return std::isalnum(c) || c == '_'; }

}  // namespace

std::string CanonicalIdentifier(const std::string &name, const std::string &what,
                                IdentifierKind kind) {
  auto bad = [&](const std::string &why) {
    return ArgumentError(what + " '" + Printable(name) + "' is not a valid CQL identifier: " + why);
  };
  const bool quoted = name.size() >= 2 && name.front() == '"' && name.back() == '"';
  const std::string inner = quoted ? name.substr(1, name.size() - 2) : name;
  if (inner.empty()) throw bad(quoted ? "the quoted name is empty" : "it is empty");
  if (kind == IdentifierKind::kKeyspaceOrTable) {
    // Cassandra refuses other names for keyspaces and tables even when quoted.
    for (unsigned char c : inner) {
      if (!IsWordChar(c)) {
        throw bad("Cassandra allows only letters, digits and '_' in keyspace and table names, "
                  "quoted or not");
      }
    }
    if (inner.size() > kMaxKeyspaceOrTableName) {
      throw bad("Cassandra allows at most 48 characters in keyspace and table names, quoted or "
                "not (this one has " + std::to_string(inner.size()) + ")");
    }
  }
  if (quoted) {
    for (unsigned char c : inner) {
      if (c == '"') throw bad("a quoted name must contain no double quote");
      if (c < 0x20) throw bad("it contains a control character");
    }
    return inner;
  }
  if (!std::isalpha(static_cast<unsigned char>(name[0]))) {
    throw bad("an unquoted name must start with a letter (quote it otherwise)");
  }
  std::string out;
  out.reserve(name.size());
  for (unsigned char c : name) {
    if (!IsWordChar(c)) {
      throw bad("an unquoted name holds only letters, digits and '_' (quote it otherwise)");
    }
    out.push_back(static_cast<char>(std::tolower(c)));
  }
  return out;
}

TableSpec MakeTableSpec(const std::string &table, const std::string &id_col,
                        const std::string &data_col, const std::string &label_col,
                        const std::string &label_type, const std::string &checksum_col) {
  TableSpec spec;
  const auto dot = table.find('.');
  if (table.empty() || dot == std::string::npos) {
    throw ArgumentError("table '" + Printable(table) + "' must be given as 'keyspace.table'");
  }
  spec.keyspace = CanonicalIdentifier(table.substr(0, dot), "keyspace of table",
                                      IdentifierKind::kKeyspaceOrTable);
  spec.table =
      CanonicalIdentifier(table.substr(dot + 1), "table", IdentifierKind::kKeyspaceOrTable);
  spec.id_col = CanonicalIdentifier(id_col, "id_col");
  spec.data_col = CanonicalIdentifier(data_col, "data_col");
  spec.label_type = ParseLabelType(label_type);
  if (spec.label_type != LabelType::kNone) {
    spec.label_col = CanonicalIdentifier(label_col, "label_col");
  }
  if (!checksum_col.empty()) spec.checksum_col = CanonicalIdentifier(checksum_col, "checksum_col");
  return spec;
}

}  // namespace cassandra_dali
