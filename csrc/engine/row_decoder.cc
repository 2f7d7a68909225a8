#include "engine/row_decoder.h"

#include <cstdio>

#include "engine/crc32c.h"

namespace cassandra_dali {
namespace {

std::string Hex32(uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

RowProblem Null(const std::string &role, const std::string &column,
                const std::function<std::string()> &what, const std::string &hint = "") {
  return {FailureKind::kNullValue, role + " column '" + column + "' is null for " + what() + hint};
}

}  // namespace

std::optional<RowProblem> DecodeRow(const DriverApi &api, const TableSpec &table,
                                    const CassRow *row,
                                    const std::function<std::string()> &what, DecodedRow &out) {
  const CassValue *data = api.cass_row_get_column(row, 0);
  if (!data || api.cass_value_is_null(data) ||
      api.cass_value_get_bytes(data, &out.data, &out.size) != CASS_OK) {
    return Null("data", table.data_col, what);
  }
  int column = 1;
  if (table.label_type != LabelType::kNone) {
    const CassValue *label = api.cass_row_get_column(row, column++);
    bool ok = label && !api.cass_value_is_null(label);
    if (ok && table.label_type == LabelType::kInt) {
      ok = api.cass_value_get_int32(label, &out.label_int) == CASS_OK;
    } else if (ok) {
      ok = api.cass_value_get_bytes(label, &out.label, &out.label_size) == CASS_OK;
    }
    if (!ok) return Null("label", table.label_col, what);
  }
  if (!table.checksum_col.empty()) {
    const CassValue *stored = api.cass_row_get_column(row, column);
    int32_t expected = 0;
    if (!stored || api.cass_value_is_null(stored) ||
        api.cass_value_get_int32(stored, &expected) != CASS_OK) {
      return Null("checksum", table.checksum_col, what, " (was it ingested with --checksum?)");
    }
    const uint32_t actual = Crc32c(out.data, out.size);
    if (actual != static_cast<uint32_t>(expected)) {
      return RowProblem{FailureKind::kChecksumMismatch,
                        "checksum mismatch for " + what() + ": column '" + table.checksum_col +
                            "' says CRC32C " + Hex32(static_cast<uint32_t>(expected)) +
                            ", the " + std::to_string(out.size) + " bytes read have " +
                            Hex32(actual) + ": the stored sample is not the one ingested"};
    }
  }
  return std::nullopt;
}

}  // namespace cassandra_dali
