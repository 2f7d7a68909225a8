#include "engine/loaders.h"

#include <algorithm>

#include "engine/errors.h"

namespace cassandra_dali {

PrefetchingLoader::PrefetchingLoader(std::shared_ptr<const Session> session,
                                     std::shared_ptr<const UuidList> uuids,
                                     const EpochOrder &order,
                                     int prefetch_buffers, int64_t prefetch_bytes,
                                     bool loop_forever, const FetchOptions &options)
    : uuids_(std::move(uuids)),
      order_(order),
      prefetch_buffers_(prefetch_buffers),
      prefetch_bytes_(prefetch_bytes),
      loop_forever_(loop_forever),
      fetcher_(std::move(session), options) {
  if (prefetch_buffers_ < 0) throw ArgumentError("prefetch_buffers must be >= 0");
  if (prefetch_bytes_ < 0) throw ArgumentError("prefetch_bytes must be >= 0");
  if (uuids_->size() != order_.layout().dataset_size) {
    throw ArgumentError("internal: UUID list and shard layout disagree on the dataset size");
  }
  for (int i = 0; i < prefetch_buffers_ + 1 + kBatchesHeldDownstream; ++i) {
    free_.push_back(fetcher_.NewBatch());
  }
}

void PrefetchingLoader::StartNextBatch() {
  Batch *batch = free_.front();
  order_.BatchIndices(issue_epoch_, issue_batch_, indices_);
  batch->source_index = indices_;
  uuids_->Gather(indices_, batch->uuids);
  fetcher_.Start(batch);  // may throw: the slot then stays free and the position unchanged
  free_.pop_front();
  in_flight_.push_back(batch);
  if (++issue_batch_ == order_.layout().BatchesPerEpoch()) {
    issue_batch_ = 0;
    ++issue_epoch_;
  }
}

const Batch *PrefetchingLoader::Next() {
  if (!loop_forever_ && consumed_batch_ == order_.layout().BatchesPerEpoch()) {
    consumed_batch_ = 0;
    ++consumed_epoch_;
    return nullptr;
  }
  if (last_) {
    free_.push_back(last_);
    last_ = nullptr;
  }
  Batch *batch;
  if (failed_) {
    // The batch that failed last time is read again (whole): an epoch never loses samples, and
    // the position stays where a checkpoint of the failed run would resume.
    batch = failed_;
    fetcher_.Start(batch);
  } else {
    if (in_flight_.empty()) StartNextBatch();
    batch = in_flight_.front();
    in_flight_.pop_front();
    failed_ = batch;  // until it is complete: whatever throws below, the next call retries it
  }
  const int depth = PrefetchDepth();
  while (static_cast<int>(in_flight_.size()) < depth && !free_.empty()) StartNextBatch();
  fetcher_.Wait(batch);
  failed_ = nullptr;
  if (prefetch_bytes_ > 0) {  // the byte budget's unit; not needed without a budget
    batch_bytes_ = 0;
    for (int i = 0; i < batch->size(); ++i) {
      batch_bytes_ += batch->data[i].size() + batch->label_blob[i].size();
    }
  }
  last_ = batch;
  if (++consumed_batch_ == order_.layout().BatchesPerEpoch() && loop_forever_) {
    consumed_batch_ = 0;
    ++consumed_epoch_;
  }
  return batch;
}

int PrefetchingLoader::PrefetchDepth() const {
  if (prefetch_bytes_ == 0 || batch_bytes_ == 0) return prefetch_buffers_;
  const int64_t fits = prefetch_bytes_ / batch_bytes_;
  return static_cast<int>(std::clamp<int64_t>(fits, std::min(1, prefetch_buffers_),
                                              prefetch_buffers_));
}

void PrefetchingLoader::Seek(const ReaderPosition &position) {
  if (position.epoch < 0 || position.batch < 0 ||
      position.batch > order_.layout().BatchesPerEpoch()) {
    throw ArgumentError("checkpoint position (epoch " + std::to_string(position.epoch) +
                        ", batch " + std::to_string(position.batch) +
                        ") does not fit this reader's " +
                        std::to_string(order_.layout().BatchesPerEpoch()) + " batches per epoch");
  }
  if (failed_) {
    in_flight_.push_front(failed_);  // its reads may still be landing: waited for below
    failed_ = nullptr;
  }
  // Those reads belong to batches the restored run will not emit from here: let them land
  // (bounded), without retrying what failed.
  while (!in_flight_.empty()) {
    Batch *batch = in_flight_.front();
    in_flight_.pop_front();
    fetcher_.Settle(batch);
    free_.push_back(batch);
  }
  consumed_epoch_ = issue_epoch_ = position.epoch;
  consumed_batch_ = issue_batch_ = position.batch;
  if (issue_batch_ == order_.layout().BatchesPerEpoch()) {  // at a StopIteration boundary
    issue_batch_ = 0;
    ++issue_epoch_;
  }
}

DirectLoader::DirectLoader(std::shared_ptr<const Session> session, const FetchOptions &options)
    : fetcher_(std::move(session), options) {
  for (int i = 0; i < kBatchesHeldDownstream + 1; ++i) slots_.push_back(fetcher_.NewBatch());
}

const Batch *DirectLoader::Read(const std::vector<UuidBytes> &uuids) {
  if (uuids.empty()) throw ArgumentError("the UUID batch is empty: nothing to read");
  Batch *batch = slots_[next_];
  next_ = (next_ + 1) % static_cast<int>(slots_.size());
  batch->uuids = uuids;
  batch->source_index.assign(uuids.size(), -1);
  fetcher_.Start(batch);
  fetcher_.Wait(batch);
  return batch;
}

}  // namespace cassandra_dali
