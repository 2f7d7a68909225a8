// Asynchronous batched reads: every row of a batch is requested at once through the driver,
// each value is copied once, in the driver's callback, into the batch's own buffers, and
// failures are collected with their kind for the consumer thread to retry or raise. No thread
// per request; requests in flight are capped (request_queue.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/bad_samples.h"
#include "engine/batch.h"
#include "engine/request_queue.h"
#include "engine/session.h"
#include "engine/telemetry.h"

namespace cassandra_dali {

// Set from the reader's argument declaration (reader_arguments.h), which holds the defaults.
struct FetchOptions {
  bool out_of_order = false;  // fill batch slots in arrival order (labels stay with their data)
  int max_in_flight = 0;      // requests at the driver per reader, at most kDriverQueueSize
  // Transient failures (timeouts, unavailable or overloaded replicas, a server restarting) are
  // retried for this long per batch: long enough to ride through a node restart.
  int retry_budget_ms = 0;
  int max_retries = 0;        // an extra cap on retry rounds; -1: only the budget counts
  int retry_backoff_ms = 0;   // first delay; doubled each round up to kMaxBackoffMs, jittered
  std::string telemetry_name;  // the reader's telemetry is listed under it ("": the table)
  // Beyond a read's own timeout, how long reads already issued may take to end (the driver's
  // bookkeeping): bounds the shutdown drain (a third of it a wait round, a sixth the grace
  // past the retry budget). Not a reader argument; tests shorten it.
  int landing_margin_ms = 30000;

  // Throws ArgumentError naming the first argument out of range.
  void Validate() const;
};

constexpr int kMaxBackoffMs = 2000;

class BatchFetcher {
 public:
  BatchFetcher(std::shared_ptr<const Session> session, FetchOptions options);
  // Cancels queued reads and waits (bounded) for those at the driver. Past the bound it returns
  // anyway: each late callback holds its batch, the queue and the session alive.
  ~BatchFetcher();
  BatchFetcher(const BatchFetcher &) = delete;
  BatchFetcher &operator=(const BatchFetcher &) = delete;

  // A batch owned by this fetcher, valid until Replace(batch) or the fetcher's end.
  Batch *NewBatch();

  // Gives up `batch` (its reads have not all ended) for a new one; the old one is freed when its
  // last read ends. The caller must not use `batch` again.
  Batch *Replace(Batch *batch);

  // Issues the reads of `uuids` into `batch`; `source_index`: each one's position in the
  // source list (empty: none); `samples`: how many of them are samples, not padding (-1: all).
  // Throws ReadError when reads of the batch are still pending (Landed is false): Replace it
  // first.
  void Start(Batch *batch, const std::vector<UuidBytes> &uuids,
             const std::vector<int64_t> &source_index = {}, int samples = -1);

  // Reads `batch` again, whole, with the UUIDs it had: into a new batch (returned) when the
  // earlier reads are still pending.
  Batch *Restart(Batch *batch);

  // Waits for the batch, retrying transient failures with capped, jittered backoff until the
  // retry budget is spent; throws MissingRowError or ReadError naming the UUID, the table, how
  // long it tried and what to do. Never blocks much longer than the budget.
  void Wait(Batch *batch);

  // on_bad_sample="replace": a bad sample of a batch with list positions is replaced by the
  // next good one of the list (bad_samples.h) instead of raising.
  void ReplaceBadSamples(std::unique_ptr<BadSamples> bad_samples) {
    bad_samples_ = std::move(bad_samples);
  }

  // Whether every read of the batch has ended (successfully or not): Wait would not block on
  // the network, and the batch may be started again.
  bool Landed(const Batch *batch) const;

  const Session &session() const { return queue_->session(); }
  ReaderTelemetry &telemetry() const { return queue_->telemetry(); }

 private:
  // How long reads already issued may take to end: each within the session's request timeout
  // (twice when a missing row is read again at a quorum), plus the margin.
  std::chrono::milliseconds LandingBound() const;
  int64_t ReadTimeoutMs() const;  // one read, a quorum re-read included
  // Points the failed read at the next substitute candidate and quarantines the bad sample;
  // false when it cannot be replaced (no policy, no list position, the list exhausted).
  bool Substitute(Batch *batch, const ReadFailure &failure);
  // Issues `requests` of `batch` again (their reads failed, or they now name a substitute).
  void Reissue(Batch *batch, const std::vector<int> &requests);
  // A complete batch's substitutes, remembered: the next bad read of those samples reads them
  // at once.
  void RememberSubstitutes(const Batch *batch);

  FetchOptions options_;
  std::shared_ptr<ReadQueue> queue_;
  std::vector<std::shared_ptr<Batch>> batches_;
  std::unique_ptr<BadSamples> bad_samples_;  // null: bad samples raise
  std::chrono::steady_clock::time_point metrics_read_{};  // the driver's, last copied
};

}  // namespace cassandra_dali
