#include "engine/loaders.h"

#include <algorithm>

#include "engine/errors.h"
#include "engine/reader_arguments.h"

namespace cassandra_dali {

void PrefetchLimits::Validate() const {
  if (min_batches < 0) throw ArgumentError("prefetch_buffers must be >= 0");
  if (max_batches < min_batches) {
    throw ArgumentError("max_prefetch_buffers (" + std::to_string(max_batches) +
                        ") must be >= prefetch_buffers (" + std::to_string(min_batches) + ")");
  }
  if (max_bytes < 0) throw ArgumentError("prefetch_bytes must be >= 0");
}

namespace {

std::shared_ptr<const UuidList> OpenList(const SelfFeedSettings &settings) {
  std::shared_ptr<const UuidList> uuids =
      settings.rows_file.empty() ? UuidList::InMemory(ParseUuidList(settings.source_uuids))
                                 : UuidList::FromFile(settings.rows_file);
  if (uuids->size() == 0) {
    throw ArgumentError(settings.rows_file.empty()
                            ? std::string("source_uuids is empty: nothing to read")
                            : "rows file '" + Printable(settings.rows_file, 4096) +
                                  "' holds no UUIDs");
  }
  return uuids;
}

}  // namespace

PrefetchingLoader::PrefetchingLoader(std::shared_ptr<const Session> session,
                                     const SelfFeedSettings &settings, int batch_size,
                                     const FetchOptions &options)
    : uuids_(OpenList(settings)),
      order_(ShardLayout(uuids_->size(), settings.num_shards, settings.shard_id, batch_size),
             settings.shuffle_every_epoch, settings.shuffle_seed),
      limits_((settings.prefetch.Validate(), settings.prefetch)),
      depth_(limits_.min_batches),
      loop_forever_(settings.loop_forever),
      fetcher_(session, options),
      table_(session->table().QualifiedName()),
      on_bad_sample_(settings.on_bad_sample) {
  if (on_bad_sample_ == BadSamplePolicy::kReplace) {
    fetcher_.ReplaceBadSamples(
        std::make_unique<BadSamples>(uuids_, table_, settings.quarantine_file));
  }
  for (; slots_ < limits_.min_batches + 1 + kBatchesHeldDownstream; ++slots_) {
    free_.push_back(fetcher_.NewBatch());
  }
}

int64_t PrefetchingLoader::BatchesIn(int64_t epoch) const {
  return order_.Batches(RestOf(epoch));
}

const EpochRemainder &PrefetchingLoader::RestOf(int64_t epoch) const {
  return epoch == rest_epoch_ ? rest_ : whole_;
}

void PrefetchingLoader::StartNextBatch() {
  Batch *batch = free_.front();
  const int samples =
      order_.BatchIndices(issue_epoch_, RestOf(issue_epoch_), issue_batch_, indices_);
  uuids_->Gather(indices_, batch_uuids_);
  fetcher_.Start(batch, batch_uuids_, indices_, samples);  // may throw: the slot stays free
  free_.pop_front();
  in_flight_.push_back({batch, issue_epoch_, samples});
  if (++issue_batch_ == BatchesIn(issue_epoch_)) {
    issue_batch_ = 0;
    ++issue_epoch_;
  }
}

int64_t PrefetchingLoader::EpochSize() const {
  return RestOf(current_epoch_.load()).Size(order_.layout().dataset_size);
}

int64_t PrefetchingLoader::PaddedEpochSize() const {
  const ShardLayout &layout = order_.layout();
  return BatchesIn(current_epoch_.load()) * layout.batch_size * layout.num_shards;
}

ReaderPosition PrefetchingLoader::position() const {
  ReaderPosition p;
  p.epoch = consumed_epoch_;
  p.batch = consumed_batch_;
  p.rest = RestOf(consumed_epoch_);
  p.delivered_epoch = delivered_epoch_;
  p.delivered = delivered_;
  return p;
}

ReaderIdentity PrefetchingLoader::identity() const {
  std::call_once(list_digest_once_, [&] { list_digest_ = uuids_->Digest(); });
  const ShardLayout &layout = order_.layout();
  ReaderIdentity id;
  id.num_shards = layout.num_shards;
  id.shard_id = layout.shard_id;
  id.batch_size = layout.batch_size;
  id.list_size = layout.dataset_size;
  id.list_digest = list_digest_;
  id.table = table_;
  id.seed = order_.seed();
  id.shuffle_every_epoch = order_.shuffle_every_epoch();
  id.loop_forever = loop_forever_;
  id.on_bad_sample = BadSamplePolicyName(on_bad_sample_);
  return id;
}

const Batch *PrefetchingLoader::Next() {
  if (!loop_forever_ && consumed_batch_ == BatchesIn(consumed_epoch_)) {
    consumed_batch_ = 0;
    current_epoch_ = ++consumed_epoch_;
    last_return_ = {};  // the consumer may do other things now: not a measure of its pace
    return nullptr;
  }
  if (last_) {
    free_.push_back(last_);
    last_ = nullptr;
  }
  Issued issued;
  bool waited = true;
  if (failed_) {
    // The batch that failed last time is read again (whole): an epoch never loses samples, and
    // the position stays where a checkpoint of the failed run would resume. (An outage, not
    // the link: no adaptation on it.)
    failed_->batch = fetcher_.Restart(failed_->batch);
    issued = *failed_;
  } else {
    if (in_flight_.empty()) StartNextBatch();
    issued = in_flight_.front();
    in_flight_.pop_front();
    failed_ = issued;  // until it is complete: whatever throws below, the next call retries it
    waited = !fetcher_.Landed(issued.batch);
    Adapt(waited);
  }
  Batch *batch = issued.batch;
  const int depth = PrefetchDepth();
  while (static_cast<int>(in_flight_.size()) < depth) {
    if (free_.empty()) {
      // Slots beyond the first ones appear as the depth grows: max_batches + 1 + held at most.
      if (slots_ >= limits_.max_batches + 1 + kBatchesHeldDownstream) break;
      free_.push_back(fetcher_.NewBatch());
      ++slots_;
    }
    StartNextBatch();
  }
  const auto wait_started = std::chrono::steady_clock::now();
  fetcher_.Wait(batch);
  failed_.reset();
  Observe(*batch);
  auto &telemetry = fetcher_.telemetry();
  telemetry.batches.fetch_add(1, std::memory_order_relaxed);
  telemetry.prefetch_depth.store(PrefetchDepth(), std::memory_order_relaxed);
  if (waited) {
    telemetry.consumer_waits.fetch_add(1, std::memory_order_relaxed);
    telemetry.consumer_wait_ns.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                             wait_started).count(),
        std::memory_order_relaxed);
  }
  if (limits_.max_bytes > 0) {  // the byte budget's unit; not needed without a budget
    batch_bytes_ = 0;
    for (int i = 0; i < batch->size(); ++i) {
      batch_bytes_ += batch->data[i].size() + batch->label_blob[i].size();
    }
  }
  // What was emitted, not what the position implies: the digest of this rank's deliveries.
  if (issued.epoch != delivered_epoch_) {
    delivered_epoch_ = issued.epoch;
    delivered_ = DeliveryDigest();
  }
  for (int i = 0; i < issued.samples; ++i) delivered_.Add(batch->source_index()[i]);
  last_ = batch;
  if (++consumed_batch_ == BatchesIn(consumed_epoch_) && loop_forever_) {
    consumed_batch_ = 0;
    ++consumed_epoch_;
  }
  current_epoch_ = consumed_epoch_;
  return batch;
}

namespace {
constexpr size_t kLatencyWindow = 64;
}  // namespace

void PrefetchingLoader::Observe(const Batch &landed) {
  const auto now = std::chrono::steady_clock::now();
  if (last_return_ != std::chrono::steady_clock::time_point{}) {
    const double interval = std::chrono::duration<double>(now - last_return_).count();
    interval_s_ = interval_s_ == 0 ? interval : 0.9 * interval_s_ + 0.1 * interval;
  }
  last_return_ = now;
  if (latencies_s_.size() < kLatencyWindow) {
    latencies_s_.push_back(landed.LatencySeconds());
  } else {
    latencies_s_[next_latency_++ % kLatencyWindow] = landed.LatencySeconds();
  }
}

double PrefetchingLoader::NeededDepth() const {
  if (interval_s_ <= 0 || latencies_s_.empty()) return -1;
  const double shortest = *std::min_element(latencies_s_.begin(), latencies_s_.end());
  return shortest / interval_s_;
}

void PrefetchingLoader::Adapt(bool waited) {
  const double needed = NeededDepth();
  const double enough = 1.5 * needed + 1;
  if (waited && (needed < 0 || depth_ < enough)) {
    depth_ = std::min(limits_.max_batches, depth_ + std::max(1, depth_ / 2));
    above_in_a_row_ = ready_in_a_row_ = 0;
    return;
  }
  above_in_a_row_ = needed >= 0 && depth_ > enough + 1 ? above_in_a_row_ + 1 : 0;
  ready_in_a_row_ = waited ? 0 : ready_in_a_row_ + 1;
  if (depth_ > limits_.min_batches && !waited &&  // never shrink while the consumer waits
      (above_in_a_row_ >= 8 || ready_in_a_row_ >= 4 * depth_ + 16)) {
    // Well above what the link needs, or ready long enough to be sure one batch less keeps up
    // (a wait brings it back at once).
    --depth_;
    above_in_a_row_ = ready_in_a_row_ = 0;
  }
}

int PrefetchingLoader::PrefetchDepth() const {
  if (limits_.max_bytes == 0 || batch_bytes_ == 0) return depth_;
  const int64_t fits = limits_.max_bytes / batch_bytes_;
  return static_cast<int>(std::clamp<int64_t>(fits, std::min(1, depth_), depth_));
}

void PrefetchingLoader::Seek(const ReaderPosition &position) {
  const int64_t batches = order_.Batches(position.rest);
  if (position.epoch < 0 || position.batch < 0 || position.batch > batches ||
      (!position.rest.whole() &&
       position.rest.intervals().back().second > order_.layout().dataset_size)) {
    throw ArgumentError("checkpoint position (epoch " + std::to_string(position.epoch) +
                        ", batch " + std::to_string(position.batch) +
                        ") does not fit this reader's " + std::to_string(batches) +
                        " batches per epoch");
  }
  if (failed_) {
    in_flight_.push_front(*failed_);
    failed_.reset();
  }
  // Those batches will not be emitted from here. Reads of them may still be at the driver:
  // such a batch is replaced rather than waited for (it is freed when they end).
  while (!in_flight_.empty()) {
    Batch *batch = in_flight_.front().batch;
    in_flight_.pop_front();
    free_.push_back(fetcher_.Landed(batch) ? batch : fetcher_.Replace(batch));
  }
  last_return_ = {};
  rest_ = position.rest;
  rest_epoch_ = position.rest.whole() ? -1 : position.epoch;
  consumed_epoch_ = issue_epoch_ = position.epoch;
  consumed_batch_ = issue_batch_ = position.batch;
  delivered_epoch_ = position.delivered_epoch;
  delivered_ = position.delivered;
  if (consumed_batch_ == batches) {
    // The end of an epoch, whether or not the consumer saw its StopIteration (DALI saves no
    // state for that iteration): the next epoch follows, without another StopIteration.
    consumed_batch_ = issue_batch_ = 0;
    consumed_epoch_ = ++issue_epoch_;
  }
  current_epoch_ = consumed_epoch_;
}

DirectLoader::DirectLoader(std::shared_ptr<const Session> session, const FetchOptions &options)
    : fetcher_(std::move(session), options) {
  for (int i = 0; i < kBatchesHeldDownstream + 1; ++i) slots_.push_back(fetcher_.NewBatch());
}

const Batch *DirectLoader::Read(const std::vector<UuidBytes> &uuids) {
  if (uuids.empty()) throw ArgumentError("the UUID batch is empty: nothing to read");
  Batch *&slot = slots_[next_];
  next_ = (next_ + 1) % static_cast<int>(slots_.size());
  // A read that failed may have left reads of this slot at the driver: a new batch takes it.
  if (!fetcher_.Landed(slot)) slot = fetcher_.Replace(slot);
  Batch *batch = slot;
  const auto started = std::chrono::steady_clock::now();
  fetcher_.Start(batch, uuids);
  fetcher_.Wait(batch);
  auto &telemetry = fetcher_.telemetry();  // a direct read is waited for whole
  telemetry.batches.fetch_add(1, std::memory_order_relaxed);
  telemetry.consumer_waits.fetch_add(1, std::memory_order_relaxed);
  telemetry.consumer_wait_ns.fetch_add(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                           started).count(),
      std::memory_order_relaxed);
  return batch;
}

}  // namespace cassandra_dali
