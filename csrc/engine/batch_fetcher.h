// Asynchronous batched reads: every row of a batch is requested at once through the driver,
// each value is copied once, in the driver's callback, into the batch's own buffers, and errors
// are collected for the consumer thread to raise. No thread per request; requests in flight are
// capped, the rest wait in a queue that completions drain.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/session.h"
#include "engine/telemetry.h"
#include "engine/uuid.h"

namespace cassandra_dali {

// Process-wide counters of sample buffer allocations (shared by the operator and the Python
// module, which link the same engine library): a running pipeline should stop allocating.
struct AllocationStats {
  uint64_t buffers = 0;
  uint64_t bytes = 0;
};
AllocationStats SampleBufferAllocations();

// A growable buffer of pageable host memory, handed downstream by sharing it; reused for a later
// batch only once nobody downstream holds it, so a running pipeline stops allocating. It shrinks
// back after an outlier: a slot much larger than its recent samples is reallocated to fit.
class SampleBuffer {
 public:
  // Room for `bytes`, its previous contents gone; returns where to write them.
  uint8_t *Prepare(size_t bytes);
  const std::shared_ptr<uint8_t> &memory() const { return memory_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

 private:
  std::shared_ptr<uint8_t> memory_;
  size_t capacity_ = 0;
  size_t size_ = 0;
  int window_uses_ = 0;   // uses in the current shrink window
  size_t window_max_ = 0;  // largest sample in it
};

struct FetchOptions {
  bool out_of_order = false;  // fill batch slots in arrival order (labels stay with their data)
  int max_in_flight = 16384;  // requests in flight per reader; the driver's I/O queue holds them
  // Transient failures (timeouts, unavailable or overloaded replicas, a server restarting) are
  // retried for this long per batch: long enough to ride through a node restart.
  int retry_budget_ms = 60000;
  int max_retries = -1;          // an extra cap on retry rounds; -1: only the budget counts
  int retry_backoff_ms = 100;    // first delay; doubled each round up to kMaxBackoffMs, jittered
  std::string telemetry_name;    // the reader's telemetry is listed under it ("": the table)
};

constexpr int kMaxBackoffMs = 2000;

class BatchFetcher;

// One batch: the requested UUIDs and, once complete, a sample per slot.
class Batch {
 public:
  int size() const { return static_cast<int>(uuids.size()); }
  // From Start to the last read landing (retries included): the read-ahead's measure of the
  // link. Meaningful once the batch is complete.
  double LatencySeconds() const {
    return std::chrono::duration<double>(landed_ - started_).count();
  }

  std::vector<UuidBytes> uuids;        // in request order
  std::vector<int64_t> source_index;   // each request's position in the source list (or -1)
  std::vector<int64_t> slot_request;   // output slot -> request index (identity unless ooo)
  std::vector<SampleBuffer> data;      // per output slot
  std::vector<SampleBuffer> label_blob;
  std::vector<int32_t> label_int;

 private:
  friend class BatchFetcher;
  struct Request {
    BatchFetcher *fetcher;
    Batch *batch;
    int index;
    std::chrono::steady_clock::time_point issued{};  // handed to the driver, for its latency
    // Read again at the session's recheck (quorum) level: the row was missing at the weaker
    // one. Kept by later retries of the read; reset by Start.
    bool recheck = false;
  };
  struct Failure {
    int request;
    bool retryable;
    std::string message;
    CassError code = CASS_OK;  // the driver's, CASS_OK when the failure is ours
  };
  void Resize(int n);

  std::vector<Request> requests_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  int pending_ = 0;
  std::atomic<int> next_slot_{0};
  std::vector<Failure> failures_;
  std::chrono::steady_clock::time_point started_, landed_;
};

class BatchFetcher {
 public:
  BatchFetcher(std::shared_ptr<const Session> session, FetchOptions options);
  // Waits (bounded) for reads still in flight, so no callback outlives the batches.
  ~BatchFetcher();
  BatchFetcher(const BatchFetcher &) = delete;
  BatchFetcher &operator=(const BatchFetcher &) = delete;

  // A batch owned by this fetcher, valid for its lifetime.
  Batch *NewBatch();

  // Issues the reads of batch->uuids (set by the caller, with source_index).
  void Start(Batch *batch);

  // Waits for the batch, retrying transient failures with capped, jittered backoff until the
  // retry budget is spent; throws MissingRowError or ReadError naming the UUID, the table, how
  // long it tried and what to do. Never blocks much longer than the budget.
  void Wait(Batch *batch);

  // Whether every read of the batch has ended (successfully or not): Wait would not block on
  // the network.
  bool Landed(Batch *batch) const;

  // Waits (bounded) for the batch's reads to end and forgets its failures: for batches whose
  // contents are not wanted any more. False if reads were still pending at the bound.
  bool Settle(Batch *batch);

  const Session &session() const { return *session_; }
  ReaderTelemetry &telemetry() const { return *telemetry_; }

 private:
  static void OnReadDone(CassFuture *future, void *data);
  // `retry`: ahead of the queue, so a batch being waited for is not stuck behind prefetches.
  void Issue(Batch::Request *request, bool retry = false);
  void Execute(Batch::Request *request);
  void Complete(Batch::Request *request, CassFuture *future) noexcept;
  // A row missing below a quorum: issues its read again at the quorum level, in the slot the
  // first read held, and returns true; false when already rechecked or nothing to recheck.
  bool Recheck(Batch::Request *request);
  // " (reading it again at LOCAL_QUORUM: no row at LOCAL_ONE)" for a rechecked read, else "".
  std::string RecheckNote(const Batch::Request *request) const;
  void CopyRow(Batch::Request *request, const CassResult *result);
  void RecordFailure(Batch::Request *request, bool retryable, std::string message,
                     CassError code = CASS_OK) noexcept;
  // What the token ring says of the final failures' rows: their replicas and why they did not
  // serve them (unavailable, or no answer in time), when the error means no replica served the
  // row ("" otherwise, or with no ring).
  std::string ReplicaNote(const Batch &batch, const std::vector<Batch::Failure> &failures) const;
  void Finish(Batch::Request *request) noexcept;
  std::string Describe(const Batch::Request *request) const;
  // How long reads already issued may take to land: each ends within the session's request
  // timeout; the margin covers the driver's own bookkeeping.
  std::chrono::milliseconds LandingBound() const;
  // How long one read may take: its request timeout, twice when a missing row is re-read.
  int64_t ReadTimeoutMs() const;

  std::shared_ptr<const Session> session_;
  FetchOptions options_;
  std::shared_ptr<ReaderTelemetry> telemetry_;
  std::vector<std::unique_ptr<Batch>> batches_;

  std::mutex mutex_;
  std::condition_variable idle_cv_;
  int in_flight_ = 0;
  std::deque<Batch::Request *> queued_;
};

}  // namespace cassandra_dali
