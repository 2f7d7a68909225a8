#include "engine/batch_fetcher.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include "engine/errors.h"

namespace cassandra_dali {
namespace {

// Full jitter over the upper half: ranks retrying against the same restarting node spread out.
std::chrono::milliseconds Backoff(int first_ms, int round) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const int64_t ceiling =
      std::min<int64_t>(kMaxBackoffMs, static_cast<int64_t>(first_ms) << std::min(round, 20));
  std::uniform_int_distribution<int64_t> pick(ceiling / 2, std::max<int64_t>(ceiling, 1));
  return std::chrono::milliseconds(pick(rng));
}

std::string Seconds(std::chrono::steady_clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", std::chrono::duration<double>(d).count());
  return text;
}

std::shared_ptr<ReaderTelemetry> RegisterFor(const Session &session,
                                             const FetchOptions &options) {
  const std::string table = session.table().QualifiedName();
  const TokenRing &ring = session.ring();
  return RegisterReader(options.telemetry_name.empty() ? table : options.telemetry_name, table,
                        ring.empty() ? std::vector<std::string>{} : ring.hosts(),
                        ring.Describe());
}

}  // namespace

void FetchOptions::Validate() const {
  if (max_in_flight < 1 || max_in_flight > kDriverQueueSize) {
    throw ArgumentError("max_requests_in_flight=" + std::to_string(max_in_flight) +
                        " must be between 1 and " + std::to_string(kDriverQueueSize) +
                        " (the driver's request queue: past it the driver refuses reads)");
  }
  if (retry_budget_ms < 0) {
    throw ArgumentError("retry_budget_ms=" + std::to_string(retry_budget_ms) +
                        " must be >= 0 (0: no retries)");
  }
  if (max_retries < -1) {
    throw ArgumentError("max_retries must be >= 0, or -1 (only retry_budget_ms counts)");
  }
  if (retry_backoff_ms < 1) {
    throw ArgumentError("retry_backoff_ms=" + std::to_string(retry_backoff_ms) +
                        " must be >= 1");
  }
  if (landing_margin_ms < 1) throw ArgumentError("internal: landing_margin_ms must be >= 1");
}

void Batch::Assign(const std::vector<UuidBytes> &uuids,
                   const std::vector<int64_t> &source_index, int samples) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (pending_ != 0) {
    throw ReadError("internal: a batch was reused with " + std::to_string(pending_) +
                    " of its reads still pending");
  }
  const size_t n = uuids.size();
  uuids_ = uuids;
  if (source_index.empty()) {
    source_index_.assign(n, -1);
  } else {
    source_index_ = source_index;
  }
  slot_request.resize(n);
  data.resize(n);
  label_blob.resize(n);
  label_int.resize(n);
  requests_.assign(n, RequestState{});
  failures_.clear();
  samples_ = samples < 0 ? static_cast<int>(n) : std::min(samples, static_cast<int>(n));
  next_slot_ = 0;
  next_tail_ = static_cast<int>(n);
}

BatchFetcher::BatchFetcher(std::shared_ptr<const Session> session, FetchOptions options)
    : options_((options.Validate(), std::move(options))) {
  auto telemetry = RegisterFor(*session, options_);
  queue_ = std::make_shared<ReadQueue>(std::move(session), options_.max_in_flight,
                                       options_.out_of_order, std::move(telemetry));
}

BatchFetcher::~BatchFetcher() {
  const auto bound = LandingBound();
  if (!queue_->Close(bound)) {
    std::fprintf(stderr,
                 "cassandra-dali: reads of table '%s' still at the driver at shutdown after "
                 "%lld ms; they end on their own, holding what they write to\n",
                 queue_->session().table().QualifiedName().c_str(),
                 static_cast<long long>(bound.count()));
  }
}

Batch *BatchFetcher::NewBatch() {
  batches_.push_back(std::make_shared<Batch>());
  return batches_.back().get();
}

Batch *BatchFetcher::Replace(Batch *batch) {
  auto it = std::find_if(batches_.begin(), batches_.end(),
                         [&](const std::shared_ptr<Batch> &b) { return b.get() == batch; });
  if (it == batches_.end()) throw std::logic_error("BatchFetcher::Replace: not its batch");
  *it = std::make_shared<Batch>();  // the reads in flight hold the old one
  return it->get();
}

void BatchFetcher::Start(Batch *batch, const std::vector<UuidBytes> &uuids,
                         const std::vector<int64_t> &source_index, int samples) {
  batch->Assign(uuids, source_index, samples);
  const int n = batch->size();
  {
    std::lock_guard<std::mutex> lock(batch->mutex_);
    batch->pending_ = n;
    batch->started_ = std::chrono::steady_clock::now();
  }
  const auto shared = batch->shared_from_this();
  for (int i = 0; i < n; ++i) queue_->Issue(shared, i, /*retry=*/false);
}

Batch *BatchFetcher::Restart(Batch *batch) {
  const std::vector<UuidBytes> uuids = batch->uuids();
  const std::vector<int64_t> source_index = batch->source_index();
  const int samples = batch->samples_;
  if (!Landed(batch)) batch = Replace(batch);
  Start(batch, uuids, source_index, samples);
  return batch;
}

void BatchFetcher::Wait(Batch *batch) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  if (started - metrics_read_ > std::chrono::seconds(1)) {  // the driver's metrics take a lock
    metrics_read_ = started;
    if (auto aborted = queue_->session().hedges_aborted()) {
      queue_->telemetry().driver_hedges_aborted.store(*aborted, std::memory_order_relaxed);
    }
  }
  const auto deadline = started + std::chrono::milliseconds(options_.retry_budget_ms);
  // One round ends when every read of it ended: each within its request timeouts (two when a
  // missing row is read again at a quorum), after waiting behind the requests queued before it.
  const int64_t per_read = ReadTimeoutMs();
  const auto round_bound = std::chrono::milliseconds(
      per_read * (2 + static_cast<int64_t>(batch->size()) / options_.max_in_flight) +
      options_.landing_margin_ms / 3);
  // Past the deadline a round may still finish its reads: each ends within its timeouts.
  const auto grace = std::chrono::milliseconds(per_read + options_.landing_margin_ms / 6);
  const Session &session = queue_->session();
  for (int round = 0;; ++round) {
    std::vector<ReadFailure> failures;
    {
      std::unique_lock<std::mutex> lock(batch->mutex_);
      const auto now = Clock::now();
      const auto until = std::min(now + round_bound, std::max(deadline, now) + grace);
      if (!batch->done_cv_.wait_until(lock, until, [&] { return batch->pending_ == 0; })) {
        throw ReadError(std::to_string(batch->pending_) + " of " +
                        std::to_string(batch->size()) + " reads from table '" +
                        session.table().QualifiedName() + "' at " +
                        session.options().Endpoint() + " still pending after " +
                        Seconds(Clock::now() - started) + " (retry_budget_ms=" +
                        std::to_string(options_.retry_budget_ms) +
                        "). The server looks down or overloaded: once it is back, resume from "
                        "the last checkpoint, or raise retry_budget_ms to ride through longer "
                        "outages");
      }
      failures.swap(batch->failures_);
    }
    if (failures.empty()) {
      RememberSubstitutes(batch);
      return;
    }
    // Bad samples under "replace" are read again at once as their substitutes: not a retry
    // round (no backoff, no retry counted), and never an error.
    std::vector<int> substituted;
    std::erase_if(failures, [&](const ReadFailure &f) {
      if (!IsBadSample(f.kind) || !Substitute(batch, f)) return false;
      substituted.push_back(f.request);
      return true;
    });
    for (const auto &f : failures) {
      if (!IsRetryable(f.kind)) ThrowPermanentFailure(f, failures.size());
    }
    if (failures.empty()) {
      Reissue(batch, substituted);
      --round;  // not a retry round
      continue;
    }
    const auto pause = Backoff(options_.retry_backoff_ms, round);
    const bool out_of_rounds = options_.max_retries >= 0 && round >= options_.max_retries;
    if (out_of_rounds || Clock::now() + pause > deadline) {
      throw ReadError(
          failures.front().message +
          ReplicaNote(session.ring(), batch->uuids(), failures,
                      session.options().request_timeout_ms) +
          "; " + std::to_string(failures.size()) + " of " + std::to_string(batch->size()) +
          " reads of this batch still failing after " + std::to_string(round) + " retries over " +
          Seconds(Clock::now() - started) +
          (out_of_rounds ? " (max_retries=" + std::to_string(options_.max_retries) + ")"
                         : " (retry_budget_ms=" + std::to_string(options_.retry_budget_ms) +
                               ")") +
          ". The server looks down or overloaded: once it is back, resume from the last "
          "checkpoint, or raise retry_budget_ms to ride through longer outages");
    }
    Reissue(batch, substituted);  // at once: the backoff is for the server, not for them
    std::this_thread::sleep_for(pause);
    queue_->telemetry().retries.fetch_add(static_cast<int64_t>(failures.size()),
                                          std::memory_order_relaxed);
    std::vector<int> retried;
    for (const auto &f : failures) retried.push_back(f.request);
    Reissue(batch, retried);
  }
}

void BatchFetcher::Reissue(Batch *batch, const std::vector<int> &requests) {
  if (requests.empty()) return;
  {
    // Counted before any is issued: one landing early must not make the batch look done.
    std::lock_guard<std::mutex> lock(batch->mutex_);
    batch->pending_ += static_cast<int>(requests.size());
  }
  const auto shared = batch->shared_from_this();
  for (int request : requests) queue_->Issue(shared, request, /*retry=*/true);
}

bool BatchFetcher::Substitute(Batch *batch, const ReadFailure &failure) {
  if (!bad_samples_) return false;
  const int64_t position = batch->source_index_[failure.request];
  if (position < 0) return false;
  auto &state = batch->requests_[failure.request];
  const int64_t read = state.candidate >= 0 ? state.candidate : position;
  bad_samples_->MarkBad(read);
  if (state.substitutes_tried >= BadSamples::kMaxCandidates) {
    throw ReadError(failure.message + "; and the " + std::to_string(BadSamples::kMaxCandidates) +
                    " samples after it in the list are bad too (on_bad_sample='replace'): "
                    "check the table and its checksum_col rather than the samples");
  }
  const int64_t candidate = bad_samples_->Candidate(position, read);
  if (candidate < 0) {
    throw ReadError(failure.message + "; and no sample of the list of " +
                    std::to_string(bad_samples_->list_size()) +
                    " reads well to replace it (on_bad_sample='replace')");
  }
  const UuidBytes substitute = bad_samples_->UuidAt(candidate);
  bad_samples_->Quarantine(batch->uuids_[failure.request], failure.kind, failure.message,
                           substitute);
  queue_->telemetry().bad_samples.fetch_add(1, std::memory_order_relaxed);
  // No read of the batch is pending (the round ended): its UUIDs may change.
  ++state.substitutes_tried;
  state.candidate = candidate;
  state.recheck = false;
  batch->uuids_[failure.request] = substitute;
  return true;
}

void BatchFetcher::RememberSubstitutes(const Batch *batch) {
  if (!bad_samples_) return;
  for (int i = 0; i < batch->size(); ++i) {
    const auto &state = batch->requests_[i];
    if (state.candidate >= 0) bad_samples_->Resolved(batch->source_index_[i], state.candidate);
  }
}

int64_t BatchFetcher::ReadTimeoutMs() const {
  const Session &session = queue_->session();
  const int64_t timeout = session.options().request_timeout_ms;
  return session.rechecks_missing_rows() ? 2 * timeout : timeout;
}

std::chrono::milliseconds BatchFetcher::LandingBound() const {
  return std::chrono::milliseconds(ReadTimeoutMs() + options_.landing_margin_ms);
}

bool BatchFetcher::Landed(const Batch *batch) const {
  std::lock_guard<std::mutex> lock(batch->mutex_);
  return batch->pending_ == 0;
}

}  // namespace cassandra_dali
