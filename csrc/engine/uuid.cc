#include "engine/uuid.h"

#include <fstream>
#include <sstream>

#include "engine/errors.h"

namespace cassandra_dali {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

std::optional<UuidBytes> ParseUuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  UuidBytes out{};
  size_t byte = 0;
  for (size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = HexValue(text[i]), lo = HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[byte++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return out;
}

std::vector<UuidBytes> ParseUuidList(const std::vector<std::string> &texts) {
  std::vector<UuidBytes> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto uuid = ParseUuid(Trim(texts[i]));
    if (!uuid) {
      throw ArgumentError("source_uuids[" + std::to_string(i) + "] = '" + Printable(texts[i]) +
                          "' is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
    }
    out.push_back(*uuid);
  }
  return out;
}

std::vector<UuidBytes> ReadUuidFile(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw ArgumentError("cannot open rows file '" + Printable(path, 4096) + "'");
  std::vector<UuidBytes> out;
  std::string line;
  for (size_t line_no = 1; std::getline(in, line); ++line_no) {
    std::string_view text = Trim(line);
    if (auto hash = text.find('#'); hash != std::string_view::npos) {
      text = Trim(text.substr(0, hash));
    }
    if (text.empty()) continue;
    auto uuid = ParseUuid(text);
    if (!uuid) {
      throw ArgumentError("rows file '" + Printable(path, 4096) + "', line " +
                          std::to_string(line_no) + ": '" + Printable(text) + "' is not a UUID");
    }
    out.push_back(*uuid);
  }
  if (in.bad()) throw ArgumentError("error reading rows file '" + Printable(path, 4096) + "'");
  return out;
}

std::string FormatUuid(const UuidBytes &uuid) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[uuid[i] >> 4]);
    out.push_back(kHex[uuid[i] & 0xF]);
  }
  return out;
}

CassUuid ToCassUuid(const UuidBytes &u) {
  auto be = [&](int from, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = v << 8 | u[from + i];
    return v;
  };
  CassUuid out;
  // time_low | time_mid << 32 | time_hi_and_version << 48
  out.time_and_version = be(0, 4) | be(4, 2) << 32 | be(6, 2) << 48;
  out.clock_seq_and_node = be(8, 8);
  return out;
}

UuidBytes FromCassUuid(const CassUuid &c) {
  UuidBytes u{};
  auto put = [&](int at, int n, uint64_t v) {
    for (int i = n - 1; i >= 0; --i, v >>= 8) u[at + i] = static_cast<uint8_t>(v & 0xFF);
  };
  put(0, 4, c.time_and_version & 0xFFFFFFFFu);
  put(4, 2, (c.time_and_version >> 32) & 0xFFFF);
  put(6, 2, (c.time_and_version >> 48) & 0xFFFF);
  put(8, 8, c.clock_seq_and_node);
  return u;
}

}  // namespace cassandra_dali
