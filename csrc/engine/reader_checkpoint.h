// What a checkpoint of fn.crs4.cassandra holds, and where a reader continues from one: at the
// same place when it reads the same way (bit-identical), or, with another shard count or batch
// size, over what the interrupted run had not yet delivered (an elastic resume). A checkpoint
// also records what the order depends on (list, table, seed, settings), so a resume that would
// read other samples is refused, and a digest of the samples its rank delivered.
#pragma once

#include <cstdint>
#include <string>

#include "engine/sample_order.h"

namespace cassandra_dali {

// Samples delivered, as a count and a sum of per-sample hashes (mod 2^64): the digests of
// disjoint deliveries add up, so the ranks' digests of an epoch, combined, equal
// EpochDigest(N) exactly when every sample was delivered once.
struct DeliveryDigest {
  int64_t count = 0;
  uint64_t sum = 0;

  void Add(int64_t source_index);
  DeliveryDigest &operator+=(const DeliveryDigest &other);
  bool operator==(const DeliveryDigest &other) const {
    return count == other.count && sum == other.sum;
  }
};

// The digest of a whole epoch of a list of `dataset_size` samples.
DeliveryDigest EpochDigest(int64_t dataset_size);

// Where a self-fed reader stands: what a DALI checkpoint saves each iteration.
struct ReaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;     // batches consumed of `epoch` (of what was left of it, after a resume)
  EpochRemainder rest;   // what was left of `epoch` when this reader started it (whole: all)
  int64_t delivered_epoch = 0;
  // This rank's samples of delivered_epoch since it started that epoch or was last resumed:
  // the last checkpoints of every rank of every run of an epoch add up to the epoch's.
  DeliveryDigest delivered;
};

// What the order depends on: a checkpoint refuses to continue mid-epoch into a reader that
// differs in any of these but the shard count, shard and batch size.
struct ReaderIdentity {
  int num_shards = 0;
  int shard_id = 0;
  int batch_size = 0;
  int64_t list_size = 0;
  uint64_t list_digest = 0;
  std::string table;
  uint64_t seed = 0;
  bool shuffle_every_epoch = false;
  bool loop_forever = false;
  // "error" or "replace": what a bad sample's position delivered. Recorded, not required to
  // match: a run stopped by a bad sample under "error" resumes under "replace".
  std::string on_bad_sample = "error";
};

struct ReaderCheckpoint {
  int version = 2;  // 1: "cassandra-reader-v1 EPOCH BATCH", no identity
  ReaderPosition position;
  ReaderIdentity identity;
};

// "cassandra-reader-v2 key=value ...": one line of text, what DALI stores for the operator.
std::string SerializeReaderCheckpoint(const ReaderCheckpoint &checkpoint);
// Both versions; throws ArgumentError saying what is malformed.
ReaderCheckpoint ParseReaderCheckpoint(const std::string &text);

// The batches a shard of `identity` reads of an epoch with `rest` left.
int64_t BatchesLeft(const ReaderIdentity &identity, const EpochRemainder &rest);

// Where a reader of `current` continues the run `saved` was taken from (docs/reader.md,
// "Checkpoints and elastic resume"). Throws ArgumentError naming the field and both values when
// a mid-epoch resume would read another order.
ReaderPosition ResumePoint(const ReaderCheckpoint &saved, const ReaderIdentity &current);

}  // namespace cassandra_dali
