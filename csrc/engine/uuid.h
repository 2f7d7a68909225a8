// UUID text and binary forms, without the driver (so they can be checked up front and tested).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "driver/cassandra_api.h"

namespace cassandra_dali {

// The 16 bytes of a UUID in network (text) order.
using UuidBytes = std::array<uint8_t, 16>;

// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case). Returns nullopt on bad text.
std::optional<UuidBytes> ParseUuid(std::string_view text);

// Parses a list; an unparsable entry raises ArgumentError with its position and text.
std::vector<UuidBytes> ParseUuidList(const std::vector<std::string> &texts);

// Reads a rows file written by the UUID cache tool: one UUID per line, '#' starts a comment,
// blank lines ignored. Errors name the file and the line.
std::vector<UuidBytes> ReadUuidFile(const std::string &path);

std::string FormatUuid(const UuidBytes &uuid);

// The driver's CassUuid layout (time fields in time_and_version, the rest big-endian in
// clock_seq_and_node), the same as cass_uuid_from_string produces.
CassUuid ToCassUuid(const UuidBytes &uuid);
UuidBytes FromCassUuid(const CassUuid &uuid);

}  // namespace cassandra_dali
