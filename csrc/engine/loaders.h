// The two loaders that drive the fetcher (DALI's name for the layer that decides which sample
// comes next and prefetches): a self-fed one that walks its own UUID list epoch after epoch
// with batches prefetched ahead, and a direct one given UUIDs batch by batch.
#pragma once

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

class PrefetchingLoader {
 public:
  // `prefetch_bytes` caps the bytes of the batches read ahead (0: no cap beyond
  // `prefetch_buffers`); at least one batch is always read ahead.
  PrefetchingLoader(std::shared_ptr<const Session> session, std::shared_ptr<const UuidList> uuids,
                    const EpochOrder &order, int prefetch_buffers, int64_t prefetch_bytes,
                    bool loop_forever, const FetchOptions &options);

  // The next complete batch, valid until the following call; nullptr once at the end of each
  // epoch when not looping forever. Reads for the next `prefetch_buffers` batches, across epoch
  // boundaries, are in flight meanwhile. A batch whose reads failed (the error is thrown) is
  // not consumed: the next call reads it again.
  const Batch *Next();

  const ShardLayout &layout() const { return order_.layout(); }
  ReaderPosition position() const { return {consumed_epoch_, consumed_batch_}; }

  // Continues from `position`: reads in flight are waited for (bounded) and dropped.
  void Seek(const ReaderPosition &position);

 private:
  void StartNextBatch();
  int PrefetchDepth() const;  // batches to keep in flight, within the byte budget

  std::shared_ptr<const UuidList> uuids_;
  EpochOrder order_;
  int prefetch_buffers_;
  int64_t prefetch_bytes_;
  int64_t batch_bytes_ = 0;  // bytes of the last batch read: the budget's unit
  bool loop_forever_;
  BatchFetcher fetcher_;
  std::vector<int64_t> indices_;
  std::deque<Batch *> free_, in_flight_;
  Batch *last_ = nullptr;    // returned by the last call, still held by the consumer
  Batch *failed_ = nullptr;  // whose reads failed: read again by the next call
  int64_t issue_epoch_ = 0, issue_batch_ = 0;
  int64_t consumed_epoch_ = 0, consumed_batch_ = 0;
};

class DirectLoader {
 public:
  DirectLoader(std::shared_ptr<const Session> session, const FetchOptions &options);

  // Reads the rows of `uuids`; the batch is reused kBatchesHeldDownstream + 1 calls later.
  const Batch *Read(const std::vector<UuidBytes> &uuids);

 private:
  BatchFetcher fetcher_;
  std::vector<Batch *> slots_;
  int next_ = 0;
};

}  // namespace cassandra_dali
