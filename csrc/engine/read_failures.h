// What can go wrong with one read, as a kind rather than a wording: whether it is worth
// retrying, which exception the consumer gets, and what a final error says about the rows'
// replicas.
#pragma once

#include <string>
#include <vector>

#include "driver/cassandra_api.h"
#include "engine/token_ring.h"
#include "engine/uuid.h"

namespace cassandra_dali {

enum class FailureKind {
  kTransient,         // a timeout, unavailable or overloaded replicas, a server restarting
  kMissingRow,        // no row with the UUID (read again at a quorum first, where that helps)
  kNullValue,         // the data, label or checksum column is null
  kChecksumMismatch,  // the bytes read do not have the CRC32C stored beside them
  kFailed,            // any other error the driver or the server reported
  kCancelled,         // the reader was destroyed with the read still queued
};

// Retried within the retry budget: only kTransient.
inline bool IsRetryable(FailureKind kind) { return kind == FailureKind::kTransient; }

// kTransient for errors a retry may cure (timeouts, unavailable, overloaded, bootstrapping, a
// write to a closing connection), kFailed for the rest.
FailureKind KindOfDriverError(CassError rc);

struct ReadFailure {
  int request;  // index of the read in its batch
  FailureKind kind;
  std::string message;
  CassError code = CASS_OK;  // the driver's, CASS_OK when the failure is ours
};

// Throws the consumer's exception for a batch's first permanent failure: MissingRowError for
// kMissingRow, ReadError otherwise; the message counts the batch's other failed reads.
[[noreturn]] void ThrowPermanentFailure(const ReadFailure &failure, size_t failed_reads);

// What the token ring says of the final failures' rows: their replicas and why they did not
// serve them (unavailable, or no answer in time), when the error means no replica served the
// row; "" otherwise, or with no ring. `uuids`: the batch's, by request index.
std::string ReplicaNote(const TokenRing &ring, const std::vector<UuidBytes> &uuids,
                        const std::vector<ReadFailure> &failures, int request_timeout_ms);

}  // namespace cassandra_dali
