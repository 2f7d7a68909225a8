// What a self-fed reader does with a sample it cannot deliver: a row missing (after the quorum
// re-read), a null value, a checksum mismatch. "error" (the default) raises, naming the UUID;
// "replace" delivers in its place the next sample of the UUID list that reads well, so batches
// stay full and equal across ranks (DALI's iterators need full batches: there is no "skip").
// The substitute depends only on the list, never on the epoch, the shard count or what this
// process met before: every rank and every resumed run picks the same one. Each bad sample is
// said once per process, counted, and written to a quarantine file (JSON lines) that
// `cassandra-dali data exclude` turns into a rows file without them.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "engine/read_failures.h"
#include "engine/uuid.h"
#include "engine/uuid_list.h"

namespace cassandra_dali {

enum class BadSamplePolicy { kError, kReplace };
BadSamplePolicy ParseBadSamplePolicy(const std::string &text);  // "error", "replace"
const char *BadSamplePolicyName(BadSamplePolicy policy);

// The kinds of failure that mean the sample itself is bad (not the cluster).
inline bool IsBadSample(FailureKind kind) {
  return kind == FailureKind::kMissingRow || kind == FailureKind::kNullValue ||
         kind == FailureKind::kChecksumMismatch;
}
const char *BadSampleReason(FailureKind kind);  // "missing_row", "null_value", ...

// $XDG_CACHE_HOME (else ~/.cache)/cassandra-dali/quarantine/KEYSPACE.TABLE.jsonl; "" without a
// home directory.
std::string DefaultQuarantinePath(const std::string &qualified_table);

// Substitutes and the quarantine of one reader. Used from the consumer's thread only.
class BadSamples {
 public:
  // `quarantine_path` empty: the default path for the table.
  BadSamples(std::shared_ptr<const UuidList> list, std::string table,
             std::string quarantine_path);

  // The list position of the substitute for the sample at list position `position` after
  // `tried` candidates (1 for the first): the next position, wrapping. -1 once every other
  // sample of the list was tried.
  int64_t Candidate(int64_t position, int tried) const;
  UuidBytes UuidAt(int64_t position) const;
  int64_t list_size() const { return list_->size(); }

  // Says (once per UUID per process) that `uuid` is bad and what replaces it, and appends it
  // to the quarantine file. Never throws: a quarantine that cannot be written is said once.
  void Quarantine(const UuidBytes &uuid, FailureKind kind, const std::string &detail,
                  const UuidBytes &substitute);
  const std::string &quarantine_path() const { return path_; }

 private:
  std::shared_ptr<const UuidList> list_;
  std::string table_;
  std::string path_;
  bool write_failed_ = false;
};

}  // namespace cassandra_dali
