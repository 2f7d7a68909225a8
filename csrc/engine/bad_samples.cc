#include "engine/bad_samples.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "engine/errors.h"

namespace cassandra_dali {

BadSamplePolicy ParseBadSamplePolicy(const std::string &text) {
  if (text == "error") return BadSamplePolicy::kError;
  if (text == "replace") return BadSamplePolicy::kReplace;
  throw ArgumentError("on_bad_sample='" + Printable(text) + "' must be 'error' or 'replace'");
}

const char *BadSamplePolicyName(BadSamplePolicy policy) {
  return policy == BadSamplePolicy::kReplace ? "replace" : "error";
}

const char *BadSampleReason(FailureKind kind) {
  switch (kind) {
    case FailureKind::kMissingRow: return "missing_row";
    case FailureKind::kNullValue: return "null_value";
    case FailureKind::kChecksumMismatch: return "checksum_mismatch";
    default: return "failed";
  }
}

std::string DefaultQuarantinePath(const std::string &qualified_table) {
  // The package's cache (cassandra_dali._files.cache_root): $CASSANDRA_DALI_CACHE, else
  // ~/.cache/cassandra-dali.
  std::string cache;
  if (const char *own = std::getenv("CASSANDRA_DALI_CACHE"); own && *own) {
    cache = own;
  } else if (const char *home = std::getenv("HOME"); home && *home) {
    cache = std::string(home) + "/.cache/cassandra-dali";
  } else {
    return "";
  }
  return cache + "/quarantine/" + qualified_table + ".jsonl";
}

namespace {

std::string JsonString(const std::string &text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// UUIDs already said and quarantined, per file and table, in this process.
std::mutex g_said_mutex;
std::unordered_set<std::string> g_said;

}  // namespace

BadSamples::BadSamples(std::shared_ptr<const UuidList> list, std::string table,
                       std::string quarantine_path)
    : list_(std::move(list)),
      table_(std::move(table)),
      path_(quarantine_path.empty() ? DefaultQuarantinePath(table_) : std::move(quarantine_path)) {}

int64_t BadSamples::Candidate(int64_t position, int64_t last) const {
  if (auto known = substitute_of_.find(position);
      known != substitute_of_.end() && !bad_.count(known->second)) {
    return known->second;
  }
  const int64_t size = list_->size();
  for (int64_t next = (last + 1) % size; next != position; next = (next + 1) % size) {
    if (!bad_.count(next)) return next;
  }
  return -1;
}

UuidBytes BadSamples::UuidAt(int64_t position) const {
  std::vector<UuidBytes> one;
  list_->Gather({position}, one);
  return one.front();
}

void BadSamples::Quarantine(const UuidBytes &uuid, FailureKind kind, const std::string &detail,
                            const UuidBytes &substitute) {
  const std::string id = FormatUuid(uuid);
  {
    std::lock_guard<std::mutex> lock(g_said_mutex);
    // Said, and quarantined there, already.
    if (!g_said.insert(path_ + " " + table_ + " " + id).second) return;
  }
  std::fprintf(stderr,
               "cassandra-dali: sample %s of table '%s' is bad (%s: %s); replaced by %s "
               "(on_bad_sample='replace'); quarantined in %s\n",
               id.c_str(), table_.c_str(), BadSampleReason(kind), detail.c_str(),
               FormatUuid(substitute).c_str(), path_.empty() ? "(no file: no home directory)"
                                                             : path_.c_str());
  if (path_.empty() || write_failed_) return;
  const std::string line =
      "{\"uuid\": " + JsonString(id) + ", \"table\": " + JsonString(table_) +
      ", \"reason\": " + JsonString(BadSampleReason(kind)) + ", \"detail\": " +
      JsonString(detail) + ", \"substitute\": " + JsonString(FormatUuid(substitute)) +
      ", \"pid\": " + std::to_string(::getpid()) + ", \"time\": " + JsonString(UtcNow()) + "}\n";
  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ignored);
  // One write of a whole line with O_APPEND: lines of concurrent ranks never interleave.
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  bool written = false;
  if (fd >= 0) {
    const off_t before = ::lseek(fd, 0, SEEK_END);
    written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    // A short write (a full disk) would leave half a line for the next one to be glued to.
    if (!written && before >= 0 && ::ftruncate(fd, before) != 0) {
      std::fprintf(stderr, "cassandra-dali: %s now ends with a partial line\n", path_.c_str());
    }
    ::close(fd);
  }
  if (!written) {
    write_failed_ = true;
    std::fprintf(stderr, "cassandra-dali: cannot append to the quarantine file %s; bad samples "
                         "are still replaced and logged\n", path_.c_str());
  }
}

}  // namespace cassandra_dali
