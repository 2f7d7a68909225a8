// One row of a read, checked and decoded: the sample's bytes, its label, and its CRC32C against
// the stored one. No I/O and no state; the bytes stay the driver's until copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "driver/driver_loader.h"
#include "engine/read_failures.h"
#include "engine/table_spec.h"

namespace cassandra_dali {

struct DecodedRow {
  const uint8_t *data = nullptr;  // the driver's, valid while its result lives
  size_t size = 0;
  int32_t label_int = 0;
  const uint8_t *label = nullptr;  // blob labels
  size_t label_size = 0;
};

struct RowProblem {
  FailureKind kind;  // kNullValue or kChecksumMismatch
  std::string message;
};

// Decodes the columns the session's SELECT lists (data, then the label unless kNone, then the
// checksum if any) into `out`. `what` names the row in messages ("id ... in table ..."), called
// only when there is a problem: every good row goes through here.
std::optional<RowProblem> DecodeRow(const DriverApi &api, const TableSpec &table,
                                    const CassRow *row, const std::function<std::string()> &what,
                                    DecodedRow &out);

}  // namespace cassandra_dali
