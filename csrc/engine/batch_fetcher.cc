#include "engine/batch_fetcher.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "engine/crc32c.h"
#include "engine/errors.h"
#include "engine/token_ring.h"

namespace cassandra_dali {
namespace {

std::atomic<uint64_t> g_allocated_buffers{0};
std::atomic<uint64_t> g_allocated_bytes{0};

bool IsRetryable(CassError rc) {
  switch (rc) {
    case CASS_ERROR_LIB_REQUEST_TIMED_OUT:
    case CASS_ERROR_LIB_REQUEST_QUEUE_FULL:
    case CASS_ERROR_LIB_NO_HOSTS_AVAILABLE:
    case CASS_ERROR_SERVER_UNAVAILABLE:
    case CASS_ERROR_SERVER_OVERLOADED:
    case CASS_ERROR_SERVER_IS_BOOTSTRAPPING:
    case CASS_ERROR_SERVER_READ_TIMEOUT:
    // A write to a connection that has just closed (a node killed or restarting): the driver
    // fails the request at once rather than trying the next host (Connection::on_write).
    // Requests already written when a connection closes are retried by the driver itself on
    // the next host (idempotent), ending in CASS_ERROR_LIB_NO_HOSTS_AVAILABLE, above.
    case CASS_ERROR_LIB_WRITE_ERROR:
      return true;
    default:
      return false;
  }
}

// Errors saying that no replica served the row (down, or too slow to answer): the rows'
// replicas are worth naming.
bool MeansUnavailable(CassError rc) {
  switch (rc) {
    case CASS_ERROR_SERVER_UNAVAILABLE:
    case CASS_ERROR_LIB_NO_HOSTS_AVAILABLE:
    case CASS_ERROR_SERVER_READ_TIMEOUT:
    case CASS_ERROR_LIB_REQUEST_TIMED_OUT:
    case CASS_ERROR_LIB_WRITE_ERROR:
      return true;
    default:
      return false;
  }
}

// Why a row's replicas did not serve it, as a final error says it after naming them.
std::string UnservedBecause(CassError rc, int request_timeout_ms) {
  switch (rc) {
    case CASS_ERROR_LIB_REQUEST_TIMED_OUT:
      return "no replica answered within request_timeout_ms=" +
             std::to_string(request_timeout_ms) + " (down or overloaded)";
    case CASS_ERROR_SERVER_READ_TIMEOUT:
      // The coordinator answered; the replicas it asked did not, within the server's timeout.
      return "no replica answered the coordinator within the server's read timeout (down or "
             "overloaded)";
    default:  // unavailable, no host left, a connection closing under the read
      return "the data is unavailable while they are down";
  }
}

std::string Hex32(uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

}  // namespace

AllocationStats SampleBufferAllocations() {
  return {g_allocated_buffers.load(), g_allocated_bytes.load()};
}

namespace {

// Room for a slot's next, slightly larger sample: an eighth more, in 64-byte steps (whole pages
// from 64 KiB on). Small samples then cost about what they hold, not a page each; slots that
// meet larger ones grow geometrically (Prepare).
size_t SlotCapacity(size_t fit) {
  const size_t step = fit >= (64u << 10) ? 4096 : 64;
  return (fit + fit / 8 + step - 1) / step * step;
}

}  // namespace

uint8_t *SampleBuffer::Prepare(size_t bytes) {
  constexpr size_t kPage = 4096;
  // Every this many uses, a slot more than twice the size of its largest sample in that window
  // is refitted: one outlier (a huge image) does not keep its memory for the rest of the run,
  // while ordinary spread in sizes never causes a reallocation.
  constexpr int kShrinkWindow = 16;
  window_max_ = std::max(window_max_, bytes);
  size_t fit = bytes;  // what a new allocation must hold with room to grow
  bool shrink = false;
  if (++window_uses_ == kShrinkWindow) {
    shrink = capacity_ > 2 * window_max_ + (window_max_ >= (64u << 10) ? kPage : 64);
    fit = window_max_;
    window_uses_ = 0;
    window_max_ = 0;
  }
  // use_count > 1: DALI (or a numpy array) still holds the previous contents.
  if (!memory_ || capacity_ < bytes || memory_.use_count() > 1 || shrink) {
    size_t capacity = SlotCapacity(fit);
    // Growing: by half at least, so a slot meeting ever larger samples reallocates a few
    // times, not at each new maximum.
    if (!shrink && capacity_ < bytes) capacity = std::max(capacity, capacity_ + capacity_ / 2);
    if (!shrink) capacity = std::max(capacity_, capacity);
    // malloc rather than new[]: no zeroing, and the bytes are overwritten at once.
    void *p = std::malloc(capacity ? capacity : 1);
    if (!p) throw std::bad_alloc();
    memory_.reset(static_cast<uint8_t *>(p), [](uint8_t *q) { std::free(q); });
    capacity_ = capacity;
    g_allocated_buffers.fetch_add(1, std::memory_order_relaxed);
    g_allocated_bytes.fetch_add(capacity, std::memory_order_relaxed);
  }
  size_ = bytes;
  return memory_.get();
}

void Batch::Resize(int n) {
  slot_request.resize(n);
  data.resize(n);
  label_blob.resize(n);
  label_int.resize(n);
  requests_.resize(n);
  if (static_cast<int>(source_index.size()) != n) source_index.resize(n, -1);
}

BatchFetcher::BatchFetcher(std::shared_ptr<const Session> session, FetchOptions options)
    : session_(std::move(session)),
      options_(options),
      telemetry_(RegisterReader(
          options_.telemetry_name.empty() ? session_->table().QualifiedName()
                                          : options_.telemetry_name,
          session_->table().QualifiedName(),
          session_->ring().empty() ? std::vector<std::string>{} : session_->ring().hosts(),
          session_->ring().Describe())) {
  if (options_.max_in_flight < 1) throw ArgumentError("max_requests_in_flight must be >= 1");
  if (options_.retry_budget_ms < 0) throw ArgumentError("retry_budget_ms must be >= 0");
  if (options_.max_retries < -1) {
    throw ArgumentError("max_retries must be >= 0, or -1 (only retry_budget_ms counts)");
  }
  if (options_.retry_backoff_ms < 1) throw ArgumentError("retry_backoff_ms must be >= 1");
}

BatchFetcher::~BatchFetcher() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (auto *request : queued_) {
    RecordFailure(request, false, "cancelled: the reader was destroyed");
    std::lock_guard<std::mutex> batch_lock(request->batch->mutex_);
    --request->batch->pending_;
  }
  queued_.clear();
  // Every request ends within the driver's request timeout; allow that and a margin.
  const auto bound = LandingBound();
  if (!idle_cv_.wait_for(lock, bound, [&] { return in_flight_ == 0; })) {
    std::fprintf(stderr,
                 "cassandra-dali: %d reads still in flight at shutdown after %lld ms; leaking "
                 "their buffers rather than freeing memory the driver may still write\n",
                 in_flight_, static_cast<long long>(bound.count()));
    for (auto &batch : batches_) batch.release();
    new std::shared_ptr<const Session>(session_);
  }
}

Batch *BatchFetcher::NewBatch() {
  batches_.push_back(std::make_unique<Batch>());
  return batches_.back().get();
}

void BatchFetcher::Start(Batch *batch) {
  {
    // A batch whose wait timed out may still have reads in flight: they must land first.
    std::unique_lock<std::mutex> lock(batch->mutex_);
    const auto bound = LandingBound();
    if (!batch->done_cv_.wait_for(lock, bound, [&] { return batch->pending_ == 0; })) {
      throw ReadError("reads of an earlier batch from table '" +
                      session_->table().QualifiedName() + "' are still pending after " +
                      std::to_string(bound.count()) + " ms");
    }
  }
  const int n = batch->size();
  batch->Resize(n);
  {
    std::lock_guard<std::mutex> lock(batch->mutex_);
    batch->failures_.clear();
    batch->pending_ = n;
    batch->next_slot_ = 0;
    batch->started_ = std::chrono::steady_clock::now();
  }
  for (int i = 0; i < n; ++i) {
    batch->requests_[i] = {this, batch, i};
    Issue(&batch->requests_[i]);
  }
}

void BatchFetcher::Issue(Batch::Request *request, bool retry) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (in_flight_ >= options_.max_in_flight) {
      if (retry) {
        queued_.push_front(request);
      } else {
        queued_.push_back(request);
      }
      return;
    }
    ++in_flight_;
  }
  Execute(request);
}

void BatchFetcher::Execute(Batch::Request *request) {
  const auto &api = session_->api();
  request->issued = std::chrono::steady_clock::now();
  telemetry_->in_flight.fetch_add(1, std::memory_order_relaxed);
  CassFuturePtr future;
  try {
    future = session_->StartRead(ToCassUuid(request->batch->uuids[request->index]),
                                 request->recheck);
  } catch (const std::exception &e) {
    RecordFailure(request, false, e.what());
    Finish(request);
    return;
  }
  if (api.cass_future_set_callback(future.get(), &BatchFetcher::OnReadDone, request) != CASS_OK) {
    RecordFailure(request, false, "the driver refused a completion callback");
    Finish(request);
  }
  // The driver keeps its own reference until the callback has run.
}

void BatchFetcher::OnReadDone(CassFuture *future, void *data) {
  auto *request = static_cast<Batch::Request *>(data);
  request->fetcher->Complete(request, future);
}

std::string BatchFetcher::Describe(const Batch::Request *request) const {
  return "id " + FormatUuid(request->batch->uuids[request->index]) + " in table '" +
         session_->table().QualifiedName() + "'";
}

void BatchFetcher::RecordFailure(Batch::Request *request, bool retryable, std::string message,
                                 CassError code) noexcept {
  telemetry_->errors.fetch_add(1, std::memory_order_relaxed);
  try {
    std::lock_guard<std::mutex> lock(request->batch->mutex_);
    request->batch->failures_.push_back({request->index, retryable, std::move(message), code});
  } catch (...) {
    // Out of memory while reporting: the batch still completes and reports a count mismatch.
  }
}

// Runs on a driver I/O thread: short, never throws, copies the bytes before the result is freed.
void BatchFetcher::Complete(Batch::Request *request, CassFuture *future) noexcept {
  const auto &api = session_->api();
  telemetry_->read_latency.Record(std::chrono::steady_clock::now() - request->issued);
  try {
    CassError rc = api.cass_future_error_code(future);
    if (rc != CASS_OK) {
      RecordFailure(request, IsRetryable(rc),
                    "reading " + Describe(request) + " at " + session_->options().Endpoint() +
                        " failed: " + FutureErrorMessage(api, future) + RecheckNote(request),
                    rc);
    } else {
      CassResultPtr result(api.cass_future_get_result(future));
      if ((!result || api.cass_result_row_count(result.get()) == 0) && Recheck(request)) {
        return;  // the re-read owns the request now (it may have ended already): no Finish
      }
      CopyRow(request, result.get());
    }
  } catch (const std::exception &e) {
    RecordFailure(request, false, "reading " + Describe(request) + ": " + e.what());
  } catch (...) {
    RecordFailure(request, false, "reading " + Describe(request) + ": unknown error");
  }
  Finish(request);
}

bool BatchFetcher::Recheck(Batch::Request *request) {
  if (request->recheck || !session_->rechecks_missing_rows()) return false;
  request->recheck = true;
  // A retry; not an error: an empty answer is one only once the quorum gives it too.
  telemetry_->retries.fetch_add(1, std::memory_order_relaxed);
  // At once, in this read's slot in flight and outside the retry rounds: no backoff is due,
  // and max_retries=0 or a spent budget must not turn a missing row into a ReadError.
  telemetry_->in_flight.fetch_sub(1, std::memory_order_relaxed);  // Execute counts it again
  Execute(request);
  return true;
}

std::string BatchFetcher::RecheckNote(const Batch::Request *request) const {
  if (!request->recheck) return "";
  return std::string(" (reading it again at ") +
         ConsistencyName(session_->recheck_consistency()) + ": no row at " +
         ConsistencyName(session_->consistency()) + ")";
}

void BatchFetcher::CopyRow(Batch::Request *request, const CassResult *result) {
  const auto &api = session_->api();
  const auto &table = session_->table();
  if (!result || api.cass_result_row_count(result) == 0) {
    // Rechecked: none at the configured level, nor at the quorum one.
    const std::string levels =
        request->recheck ? std::string(" (read at ") + ConsistencyName(session_->consistency()) +
                               " and again at " +
                               ConsistencyName(session_->recheck_consistency()) + ")"
                         : "";
    RecordFailure(request, false, "no row with " + Describe(request) + levels);
    return;
  }
  const CassRow *row = api.cass_result_first_row(result);
  const CassValue *data = api.cass_row_get_column(row, 0);
  const uint8_t *bytes = nullptr;
  size_t size = 0;
  if (!data || api.cass_value_is_null(data) ||
      api.cass_value_get_bytes(data, &bytes, &size) != CASS_OK) {
    RecordFailure(request, false,
                  "data column '" + table.data_col + "' is null for " + Describe(request));
    return;
  }
  int32_t label_int = 0;
  const uint8_t *label_bytes = nullptr;
  size_t label_size = 0;
  if (table.label_type != LabelType::kNone) {
    const CassValue *label = api.cass_row_get_column(row, 1);
    bool ok = label && !api.cass_value_is_null(label);
    if (ok && table.label_type == LabelType::kInt) {
      ok = api.cass_value_get_int32(label, &label_int) == CASS_OK;
    } else if (ok) {
      ok = api.cass_value_get_bytes(label, &label_bytes, &label_size) == CASS_OK;
    }
    if (!ok) {
      RecordFailure(request, false,
                    "label column '" + table.label_col + "' is null for " + Describe(request));
      return;
    }
  }
  if (!table.checksum_col.empty()) {
    const int column = table.label_type == LabelType::kNone ? 1 : 2;
    const CassValue *stored = api.cass_row_get_column(row, column);
    int32_t expected = 0;
    if (!stored || api.cass_value_is_null(stored) ||
        api.cass_value_get_int32(stored, &expected) != CASS_OK) {
      RecordFailure(request, false,
                    "checksum column '" + table.checksum_col + "' is null for " +
                        Describe(request) + " (was it ingested with --checksum?)");
      return;
    }
    const uint32_t actual = Crc32c(bytes, size);
    if (actual != static_cast<uint32_t>(expected)) {
      RecordFailure(request, false,
                    "checksum mismatch for " + Describe(request) + ": column '" +
                        table.checksum_col + "' says CRC32C " +
                        Hex32(static_cast<uint32_t>(expected)) + ", the " +
                        std::to_string(size) + " bytes read have " + Hex32(actual) +
                        ": the stored sample is not the one ingested");
      return;
    }
  }
  Batch &batch = *request->batch;
  const int slot = options_.out_of_order ? batch.next_slot_++ : request->index;
  std::memcpy(batch.data[slot].Prepare(size), bytes, size);
  telemetry_->rows.fetch_add(1, std::memory_order_relaxed);
  telemetry_->bytes.fetch_add(static_cast<int64_t>(size), std::memory_order_relaxed);
  if (table.label_type == LabelType::kBlob) {
    std::memcpy(batch.label_blob[slot].Prepare(label_size), label_bytes, label_size);
  }
  batch.label_int[slot] = label_int;
  batch.slot_request[slot] = request->index;
  if (!telemetry_->hosts.empty()) {
    const int host = session_->ring().PrimaryReplica(UuidToken(batch.uuids[request->index]));
    if (host >= 0 && host < static_cast<int>(telemetry_->hosts.size())) {
      telemetry_->reads_by_host[host].fetch_add(1, std::memory_order_relaxed);
    }
  }
}

std::string BatchFetcher::ReplicaNote(const Batch &batch,
                                      const std::vector<Batch::Failure> &failures) const {
  const TokenRing &ring = session_->ring();
  if (ring.empty() || failures.empty() || !MeansUnavailable(failures.front().code)) return "";
  const auto &hosts = ring.hosts();
  auto names = [&](const std::vector<int> &indexes) {
    std::string text;
    for (int h : indexes) text += (text.empty() ? "" : ", ") + hosts[h];
    return text;
  };
  const int64_t token = UuidToken(batch.uuids[failures.front().request]);
  const auto &replicas = ring.Replicas(token);
  std::string note =
      replicas.empty()
          ? "; the row's token range is owned by " + hosts[ring.PrimaryHost(token)] + " (" +
                ring.replication().Describe() + ")"
          : "; the row's replicas (" + ring.replication().Factor() + "): " + names(replicas) +
                ": " +
                UnservedBecause(failures.front().code, session_->options().request_timeout_ms);
  if (failures.size() > 1 && hosts.size() > 1) {
    // Which nodes the failing rows live on: usually one node down explains them all.
    std::vector<int64_t> rows_by_host(hosts.size(), 0);
    int counted = 0;
    for (const auto &f : failures) {
      if (!MeansUnavailable(f.code)) continue;
      ++counted;
      const int host = ring.PrimaryReplica(UuidToken(batch.uuids[f.request]));
      if (host >= 0) ++rows_by_host[host];
    }
    std::string tally;
    for (size_t h = 0; h < hosts.size(); ++h) {
      if (rows_by_host[h] == 0) continue;
      tally += (tally.empty() ? "" : ", ") + hosts[h] + " (" + std::to_string(rows_by_host[h]) +
               (rows_by_host[h] == 1 ? " row)" : " rows)");
    }
    note += "; the " + std::to_string(counted) + " rows of this batch no replica served, by "
            "primary replica: " + tally;
  }
  return note;
}

void BatchFetcher::Finish(Batch::Request *request) noexcept {
  telemetry_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  Batch &batch = *request->batch;
  {
    std::lock_guard<std::mutex> lock(batch.mutex_);
    if (--batch.pending_ == 0) {
      batch.landed_ = std::chrono::steady_clock::now();
      batch.done_cv_.notify_all();
    }
  }
  Batch::Request *next = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!queued_.empty()) {
      next = queued_.front();  // hand our slot in flight to the oldest queued request
      queued_.pop_front();
    } else if (--in_flight_ == 0) {
      idle_cv_.notify_all();
    }
  }
  if (next) Execute(next);
}

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
  std::snprintf(text, sizeof text, "%.1f s",
                std::chrono::duration<double>(d).count());
  return text;
}

}  // namespace

void BatchFetcher::Wait(Batch *batch) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  const auto deadline = started + std::chrono::milliseconds(options_.retry_budget_ms);
  // One round ends when every read of it ended: each within its request timeouts (two when a
  // missing row is read again at a quorum), after waiting behind the requests queued before it.
  const int64_t per_read = ReadTimeoutMs();
  const auto round_bound = std::chrono::milliseconds(
      per_read * (2 + static_cast<int64_t>(batch->size()) / options_.max_in_flight) + 10000);
  // Past the deadline a round may still finish its reads: each ends within its timeouts.
  const auto grace = std::chrono::milliseconds(per_read + 5000);
  for (int round = 0;; ++round) {
    std::vector<Batch::Failure> failures;
    {
      std::unique_lock<std::mutex> lock(batch->mutex_);
      const auto now = Clock::now();
      const auto until = std::min(now + round_bound, std::max(deadline, now) + grace);
      if (!batch->done_cv_.wait_until(lock, until, [&] { return batch->pending_ == 0; })) {
        throw ReadError(std::to_string(batch->pending_) + " of " +
                        std::to_string(batch->size()) + " reads from table '" +
                        session_->table().QualifiedName() + "' at " +
                        session_->options().Endpoint() + " still pending after " +
                        Seconds(Clock::now() - started) + " (retry_budget_ms=" +
                        std::to_string(options_.retry_budget_ms) +
                        "). The server looks down or overloaded: once it is back, resume from "
                        "the last checkpoint, or raise retry_budget_ms to ride through longer "
                        "outages");
      }
      failures.swap(batch->failures_);
    }
    if (failures.empty()) return;
    for (const auto &f : failures) {
      if (!f.retryable) {
        std::string more = failures.size() > 1
                               ? " (and " + std::to_string(failures.size() - 1) +
                                     " more failed reads in this batch)"
                               : "";
        if (f.message.rfind("no row with", 0) == 0) throw MissingRowError(f.message + more);
        throw ReadError(f.message + more);
      }
    }
    const auto pause = Backoff(options_.retry_backoff_ms, round);
    const bool out_of_rounds = options_.max_retries >= 0 && round >= options_.max_retries;
    if (out_of_rounds || Clock::now() + pause > deadline) {
      throw ReadError(
          failures.front().message + ReplicaNote(*batch, failures) + "; " +
          std::to_string(failures.size()) + " of " +
          std::to_string(batch->size()) + " reads of this batch still failing after " +
          std::to_string(round) + " retries over " + Seconds(Clock::now() - started) +
          (out_of_rounds ? " (max_retries=" + std::to_string(options_.max_retries) + ")"
                         : " (retry_budget_ms=" + std::to_string(options_.retry_budget_ms) +
                               ")") +
          ". The server looks down or overloaded: once it is back, resume from the last "
          "checkpoint, or raise retry_budget_ms to ride through longer outages");
    }
    std::this_thread::sleep_for(pause);
    {
      std::lock_guard<std::mutex> lock(batch->mutex_);
      batch->pending_ = static_cast<int>(failures.size());
    }
    telemetry_->retries.fetch_add(static_cast<int64_t>(failures.size()),
                                  std::memory_order_relaxed);
    for (const auto &f : failures) Issue(&batch->requests_[f.request], /*retry=*/true);
  }
}

int64_t BatchFetcher::ReadTimeoutMs() const {
  const int64_t timeout = session_->options().request_timeout_ms;
  return session_->rechecks_missing_rows() ? 2 * timeout : timeout;
}

std::chrono::milliseconds BatchFetcher::LandingBound() const {
  return std::chrono::milliseconds(ReadTimeoutMs() + 30000);
}

bool BatchFetcher::Landed(Batch *batch) const {
  std::lock_guard<std::mutex> lock(batch->mutex_);
  return batch->pending_ == 0;
}

bool BatchFetcher::Settle(Batch *batch) {
  std::unique_lock<std::mutex> lock(batch->mutex_);
  const bool settled =
      batch->done_cv_.wait_for(lock, LandingBound(), [&] { return batch->pending_ == 0; });
  batch->failures_.clear();
  return settled;
}

}  // namespace cassandra_dali
