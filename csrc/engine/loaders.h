// The two loaders that drive the fetcher (DALI's name for the layer that decides which sample
// comes next and prefetches): a self-fed one that walks its own UUID list epoch after epoch
// with batches prefetched ahead, and a direct one given UUIDs batch by batch.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "engine/batch_fetcher.h"
#include "engine/reader_checkpoint.h"
#include "engine/sample_order.h"
#include "engine/uuid_list.h"

namespace cassandra_dali {

// Batches a consumer may still hold after asking for the next one (DALI's prefetch queue, two
// by default, and the user's current outputs); slots beyond them let buffers be reused.
constexpr int kBatchesHeldDownstream = 3;


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
  // Where the consumer stands (what a checkpoint saves): the next batch it gets, what is left
  // of that epoch, and the digest of the samples it got of its last epoch. Checkpoints restore
  // by recomputing the order, not by replaying reads.
  ReaderPosition position() const;
  // The samples of the epoch the reader is in (fewer in an epoch resumed on another split),
  // and its padded size over all shards: what DALI's iterators size an epoch by.
  int64_t EpochSize() const;
  int64_t PaddedEpochSize() const;
  // What this reader's order depends on (the list's digest is computed once, on first use).
  ReaderIdentity identity() const;

  // Continues from `position`: reads in flight are dropped (their batches are replaced, not
  // waited for). A position at the end of an epoch continues with the next one.
  void Seek(const ReaderPosition &position);

 private:
  // A batch handed to the fetcher, with what the order says of it.
  struct Issued {
    Batch *batch = nullptr;
    int64_t epoch = 0;
    int samples = 0;  // its first `samples` slots are samples; the rest is padding
  };
  void StartNextBatch();
  // The batches of `epoch` this shard reads: fewer for an epoch resumed on another split.
  int64_t BatchesIn(int64_t epoch) const;
  const EpochRemainder &RestOf(int64_t epoch) const;
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
  std::deque<Batch *> free_;
  std::deque<Issued> in_flight_;
  Batch *last_ = nullptr;          // returned by the last call, still held by the consumer
  std::optional<Issued> failed_;   // whose reads failed: read again by the next call
  int64_t issue_epoch_ = 0, issue_batch_ = 0;
  int64_t consumed_epoch_ = 0, consumed_batch_ = 0;
  // consumed_epoch_ for other threads (DALI asks the reader's metadata from Python's).
  std::atomic<int64_t> current_epoch_{0};
  // What was left of epoch rest_epoch_ when this reader started it (an elastic resume); every
  // other epoch is whole.
  EpochRemainder rest_;
  int64_t rest_epoch_ = -1;
  const EpochRemainder whole_;
  int64_t delivered_epoch_ = 0;
  DeliveryDigest delivered_;
  std::string table_;
  BadSamplePolicy on_bad_sample_;
  mutable std::once_flag list_digest_once_;
  mutable uint64_t list_digest_ = 0;
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
