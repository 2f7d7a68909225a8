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
#include <unordered_map>
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

// $CASSANDRA_DALI_CACHE (else ~/.cache/cassandra-dali)/quarantine/KEYSPACE.TABLE.jsonl; ""
// without a home directory.
std::string DefaultQuarantinePath(const std::string &qualified_table);

// Substitutes and the quarantine of one reader. Used from the consumer's thread only.
class BadSamples {
 public:
  // `quarantine_path` empty: the default path for the table.
  BadSamples(std::shared_ptr<const UuidList> list, std::string table,
             std::string quarantine_path);

  // Candidates read for one bad sample before the reader gives up: a run of bad samples that
  // long is a wrong table or checksum column, not a few damaged rows.
  static constexpr int kMaxCandidates = 64;

  // The list position to try next in place of the sample at `position`, `last` being the one
  // just found bad (`position` itself at first): its substitute when already known, else the
  // next position after `last` not known to be bad, wrapping; -1 once back at `position`.
  int64_t Candidate(int64_t position, int64_t last) const;
  // What the reads found: a position whose sample is bad, and a bad position's substitute.
  // Each bad sample is then read once per process, and each walk made once.
  void MarkBad(int64_t position) { bad_.insert(position); }
  void Resolved(int64_t position, int64_t substitute) { substitute_of_[position] = substitute; }
  UuidBytes UuidAt(int64_t position) const;
  int64_t list_size() const { return list_->size(); }

  // Says (once per UUID per process) that `uuid` is bad and what replaces it, and appends it
  // to the quarantine file. Never throws: a quarantine that cannot be written is said once.
  void Quarantine(const UuidBytes &uuid, FailureKind kind, const std::string &detail,
                  const UuidBytes &substitute);

 private:
  std::shared_ptr<const UuidList> list_;
  std::string table_;
  std::string path_;
  bool write_failed_ = false;
  std::unordered_set<int64_t> bad_;
  std::unordered_map<int64_t, int64_t> substitute_of_;
};

}  // namespace cassandra_dali
