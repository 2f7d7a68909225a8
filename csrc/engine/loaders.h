// The two loaders that drive the fetcher (DALI's name for the layer that decides which sample
// comes next and prefetches): a self-fed one that walks its own UUID list epoch after epoch
// with batches prefetched ahead, and a direct one given UUIDs batch by batch.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <vector>

#include "engine/batch_fetcher.h"
#include "engine/sample_order.h"
#include "engine/uuid_list.h"

namespace cassandra_dali {

// Batches a consumer may still hold after asking for the next one (DALI's prefetch queue, two
// by default, and the user's current outputs); slots beyond them let buffers be reused.
constexpr int kBatchesHeldDownstream = 3;

// Where a self-fed reader stands: the epoch and batch it returns next. Checkpoints store this
// and restore by recomputing the order, not by replaying reads.
struct ReaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
};

// How far ahead a self-fed loader reads. The depth adapts between `min_batches` and
// `max_batches`, never past `max_bytes` of read-ahead data (0: no byte cap; at least one batch
// is always read ahead). By Little's law the link needs rate x latency batches in flight: the
// depth grows (by half) when the consumer has to wait for a batch and is not already above
// 1.5 x (batches consumed per second) x (the shortest recent batch latency) + 1, and shrinks
// by one when it is well above that, or after a long run of batches that were ready (never
// while the consumer waits). A long round trip then fills the pipe by itself. Behind a server
// that is simply slower than the consumer, batch latency includes queueing and the depth can
// still climb to its caps: max_batches and max_bytes bound that memory.
// Set from the reader's argument declaration (prefetch_buffers, max_prefetch_buffers,
// prefetch_bytes), which holds the defaults.
struct PrefetchLimits {
  int min_batches = 0;
  int max_batches = 0;
  int64_t max_bytes = 0;

  void Validate() const;  // throws ArgumentError naming the argument
};

struct SelfFeedSettings;

class PrefetchingLoader {
 public:
  // Walks the list `settings` name (source_uuids or the rows file), shard settings.shard_id of
  // settings.num_shards, in batches of `batch_size`.
  PrefetchingLoader(std::shared_ptr<const Session> session, const SelfFeedSettings &settings,
                    int batch_size, const FetchOptions &options);

  // The next complete batch, valid until the following call; nullptr once at the end of each
  // epoch when not looping forever. Reads for the next batches (the adaptive depth), across
  // epoch boundaries, are in flight meanwhile. A batch whose reads failed (the error is thrown) is
  // not consumed: the next call reads it again.
  const Batch *Next();

  const ShardLayout &layout() const { return order_.layout(); }
  ReaderPosition position() const { return {consumed_epoch_, consumed_batch_}; }

  // Continues from `position`: reads in flight are dropped (their batches are replaced, not
  // waited for).
  void Seek(const ReaderPosition &position);

 private:
  void StartNextBatch();
  void Adapt(bool waited);
  void Observe(const Batch &landed);  // the consumption rate and the batch latencies
  double NeededDepth() const;         // Little's law; -1 while nothing is measured yet
  int PrefetchDepth() const;  // batches to keep in flight, within the byte budget

  std::shared_ptr<const UuidList> uuids_;
  EpochOrder order_;
  PrefetchLimits limits_;
  int depth_;                // the adaptive depth, in [min_batches, max_batches]
  int ready_in_a_row_ = 0;   // batches found landed when asked for, since the last change
  int above_in_a_row_ = 0;   // calls with the depth well above what the link needs
  std::chrono::steady_clock::time_point last_return_{};
  double interval_s_ = 0;                 // EWMA of the time between two batches returned
  std::vector<double> latencies_s_;       // of the last kLatencyWindow batches, a ring
  size_t next_latency_ = 0;
  int slots_ = 0;            // batches allocated
  int64_t batch_bytes_ = 0;  // bytes of the last batch read: the budget's unit
  bool loop_forever_;
  BatchFetcher fetcher_;
  std::vector<int64_t> indices_;
  std::vector<UuidBytes> batch_uuids_;  // the UUIDs at indices_
  std::deque<Batch *> free_, in_flight_;
  Batch *last_ = nullptr;    // returned by the last call, still held by the consumer
  Batch *failed_ = nullptr;  // whose reads failed: read again by the next call
  int64_t issue_epoch_ = 0, issue_batch_ = 0;
  int64_t consumed_epoch_ = 0, consumed_batch_ = 0;
};

class DirectLoader {
 public:
  DirectLoader(std::shared_ptr<const Session> session, const FetchOptions &options);

  // Reads the rows of `uuids`; the batch is reused kBatchesHeldDownstream + 1 calls later (a
  // new one takes its place if reads of it are still pending then). One caller at a time.
  const Batch *Read(const std::vector<UuidBytes> &uuids);

  const ReaderTelemetry &telemetry() const { return fetcher_.telemetry(); }

 private:
  BatchFetcher fetcher_;
  std::vector<Batch *> slots_;
  int next_ = 0;
};

}  // namespace cassandra_dali
