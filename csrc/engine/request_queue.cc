#include "engine/request_queue.h"

#include <cstring>

#include "engine/errors.h"
#include "engine/row_decoder.h"

namespace cassandra_dali {

// One read handed to the driver: what its callback needs, held alive by it.
struct ReadTicket {
  std::shared_ptr<ReadQueue> queue;
  std::shared_ptr<Batch> batch;
  int index = 0;
  std::chrono::steady_clock::time_point issued{};  // handed to the driver, for its latency
  int hedge_step = -1;  // the hedge delay it was issued with (-1: not hedged)
};

namespace {

// The reads this thread has yet to start, while a loop in Execute runs on it; null otherwise.
thread_local std::deque<std::unique_ptr<ReadTicket>> *t_runnable = nullptr;

}  // namespace

ReadQueue::ReadQueue(std::shared_ptr<const Session> session, int max_in_flight,
                     bool out_of_order, std::shared_ptr<ReaderTelemetry> telemetry)
    : session_(std::move(session)),
      max_in_flight_(max_in_flight),
      out_of_order_(out_of_order),
      telemetry_(std::move(telemetry)) {
  if (session_->hedging()) {
    HedgeDelay::Config config;
    // A hedge past half the request timeout would rarely beat the first try's own timeout.
    config.ceiling_ms = std::max(
        config.floor_ms, std::min(config.ceiling_ms, session_->options().request_timeout_ms / 2));
    hedge_ = std::make_unique<HedgeDelay>(config);
    telemetry_->hedge_delay_ms.store(hedge_->delay_ms(), std::memory_order_relaxed);
  }
}

ReadQueue::~ReadQueue() = default;

void ReadQueue::Issue(const std::shared_ptr<Batch> &batch, int index, bool retry) {
  auto ticket = std::make_unique<ReadTicket>();
  ticket->queue = shared_from_this();
  ticket->batch = batch;
  ticket->index = index;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) throw std::logic_error("ReadQueue::Issue after Close");
    if (in_flight_ >= max_in_flight_) {
      if (retry) {
        queued_.push_front(std::move(ticket));
      } else {
        queued_.push_back(std::move(ticket));
      }
      return;
    }
    ++in_flight_;
  }
  Execute(std::move(ticket));
}

bool ReadQueue::Close(std::chrono::milliseconds bound) {
  std::deque<std::unique_ptr<ReadTicket>> cancelled;
  std::unique_lock<std::mutex> lock(mutex_);
  closed_ = true;
  cancelled.swap(queued_);
  lock.unlock();
  for (auto &ticket : cancelled) {
    Fail(*ticket, FailureKind::kCancelled, "cancelled: the reader was destroyed");
    std::lock_guard<std::mutex> batch_lock(ticket->batch->mutex_);
    if (--ticket->batch->pending_ == 0) ticket->batch->done_cv_.notify_all();
  }
  lock.lock();
  return idle_cv_.wait_for(lock, bound, [&] { return in_flight_ == 0; });
}

void ReadQueue::Execute(std::unique_ptr<ReadTicket> ticket) {
  if (t_runnable) {  // inside a callback that ran at once in a Start below: the loop takes it
    t_runnable->push_back(std::move(ticket));
    return;
  }
  std::deque<std::unique_ptr<ReadTicket>> runnable;
  runnable.push_back(std::move(ticket));
  t_runnable = &runnable;
  while (!runnable.empty()) {
    auto next = std::move(runnable.front());
    runnable.pop_front();
    // Held to the end of the read's start: a read that ends inside it drops its ticket.
    std::shared_ptr<ReadQueue> queue = next->queue;
    queue->Start(std::move(next));
  }
  t_runnable = nullptr;
}

void ReadQueue::Start(std::unique_ptr<ReadTicket> ticket) noexcept {
  const auto &api = session_->api();
  ticket->issued = std::chrono::steady_clock::now();
  ticket->hedge_step = hedge_ ? hedge_->step() : -1;
  telemetry_->in_flight.fetch_add(1, std::memory_order_relaxed);
  CassFuturePtr future;
  try {
    const Batch &batch = *ticket->batch;
    future = session_->StartRead(ToCassUuid(batch.uuids_[ticket->index]),
                                 batch.requests_[ticket->index].recheck, ticket->hedge_step);
  } catch (const std::exception &e) {
    Fail(*ticket, FailureKind::kFailed, "reading " + Describe(*ticket) + ": " + e.what());
    Finish(std::move(ticket));
    return;
  }
  ReadTicket *handed = ticket.release();
  // The driver may run the callback at once, inside this call (a read it fails synchronously).
  if (api.cass_future_set_callback(future.get(), &ReadQueue::OnReadDone, handed) != CASS_OK) {
    ticket.reset(handed);  // not taken: no callback will come
    Fail(*ticket, FailureKind::kFailed,
         "reading " + Describe(*ticket) + ": the driver refused a completion callback");
    Finish(std::move(ticket));
  }
  // The driver keeps its own reference to the future until the callback has run.
}

void ReadQueue::OnReadDone(CassFuture *future, void *data) {
  DriverCallbackScope in_callback;  // a session freed from here is closed off this thread
  std::unique_ptr<ReadTicket> ticket(static_cast<ReadTicket *>(data));
  // Held to the end of this call: Finish may drop the ticket's reference, the last one.
  std::shared_ptr<ReadQueue> queue = ticket->queue;
  queue->Complete(std::move(ticket), future);
}

std::string ReadQueue::Describe(const ReadTicket &ticket) const {
  return "id " + FormatUuid(ticket.batch->uuids_[ticket.index]) + " in table '" +
         session_->table().QualifiedName() + "'";
}

std::string ReadQueue::RecheckNote(const ReadTicket &ticket) const {
  if (!ticket.batch->requests_[ticket.index].recheck) return "";
  return std::string(" (reading it again at ") +
         ConsistencyName(session_->recheck_consistency()) + ": no row at " +
         ConsistencyName(session_->consistency()) + ")";
}

void ReadQueue::Fail(const ReadTicket &ticket, FailureKind kind, std::string message,
                     CassError code) noexcept {
  telemetry_->errors.fetch_add(1, std::memory_order_relaxed);
  try {
    std::lock_guard<std::mutex> lock(ticket.batch->mutex_);
    ticket.batch->failures_.push_back({ticket.index, kind, std::move(message), code});
  } catch (...) {
    // Out of memory while reporting: the batch still completes and reports a count mismatch.
  }
}

// Runs on a driver I/O thread: short, never throws, copies the bytes before the result is freed.
void ReadQueue::Complete(std::unique_ptr<ReadTicket> ticket, CassFuture *future) noexcept {
  const auto &api = session_->api();
  const auto latency = std::chrono::steady_clock::now() - ticket->issued;
  telemetry_->read_latency.Record(latency);
  try {
    const CassError rc = api.cass_future_error_code(future);
    // Answers only: a failure fast (no host during an outage) says nothing of a read's latency,
    // and a window of them would pin the delay at its floor after the outage.
    if (hedge_ && ticket->hedge_step >= 0 && rc == CASS_OK) ObserveHedge(*ticket, latency);
    if (rc != CASS_OK) {
      Fail(*ticket, KindOfDriverError(rc),
           "reading " + Describe(*ticket) + " at " + session_->options().Endpoint() +
               " failed: " + FutureErrorMessage(api, future) + RecheckNote(*ticket),
           rc);
    } else {
      CassResultPtr result(api.cass_future_get_result(future));
      if ((!result || api.cass_result_row_count(result.get()) == 0) && Recheck(ticket)) {
        return;  // the re-read owns the ticket now
      }
      Land(*ticket, result.get());
    }
  } catch (const std::exception &e) {
    Fail(*ticket, FailureKind::kFailed, "reading " + Describe(*ticket) + ": " + e.what());
  } catch (...) {
    Fail(*ticket, FailureKind::kFailed, "reading " + Describe(*ticket) + ": unknown error");
  }
  Finish(std::move(ticket));
}

void ReadQueue::ObserveHedge(const ReadTicket &ticket, std::chrono::nanoseconds latency) noexcept {
  try {
    const HedgeOutcome outcome = hedge_->Observe(latency, ticket.hedge_step);
    if (outcome.hedged) telemetry_->hedges_sent.fetch_add(1, std::memory_order_relaxed);
    if (outcome.won) telemetry_->hedges_won.fetch_add(1, std::memory_order_relaxed);
    // Written only when it moved (every 512 reads at most): a store per read would bounce the
    // counter's cache line between the driver's I/O threads.
    const int delay_ms = hedge_->delay_ms();
    if (telemetry_->hedge_delay_ms.load(std::memory_order_relaxed) != delay_ms) {
      telemetry_->hedge_delay_ms.store(delay_ms, std::memory_order_relaxed);
    }
  } catch (...) {
    // Out of memory for the estimator's window: the delay stays where it is.
  }
}

bool ReadQueue::Recheck(std::unique_ptr<ReadTicket> &ticket) {
  auto &state = ticket->batch->requests_[ticket->index];
  if (state.recheck || !session_->rechecks_missing_rows()) return false;
  state.recheck = true;
  // A retry; not an error: an empty answer is one only once the quorum gives it too.
  telemetry_->retries.fetch_add(1, std::memory_order_relaxed);
  // At once, in this read's slot in flight and outside the retry rounds: no backoff is due,
  // and max_retries=0 or a spent budget must not turn a missing row into a ReadError.
  telemetry_->in_flight.fetch_sub(1, std::memory_order_relaxed);  // Start counts it again
  Execute(std::move(ticket));
  return true;
}

void ReadQueue::Land(const ReadTicket &ticket, const CassResult *result) {
  const auto &api = session_->api();
  if (!result || api.cass_result_row_count(result) == 0) {
    // Rechecked: none at the configured level, nor at the quorum one.
    const std::string levels = ticket.batch->requests_[ticket.index].recheck
                                   ? std::string(" (read at ") +
                                         ConsistencyName(session_->consistency()) +
                                         " and again at " +
                                         ConsistencyName(session_->recheck_consistency()) + ")"
                                   : "";
    Fail(ticket, FailureKind::kMissingRow, "no row with " + Describe(ticket) + levels);
    return;
  }
  DecodedRow row;
  if (auto problem = DecodeRow(api, session_->table(), api.cass_result_first_row(result),
                               [&] { return Describe(ticket); }, row)) {
    Fail(ticket, problem->kind, std::move(problem->message));
    return;
  }
  Batch &batch = *ticket.batch;
  // Out of order, samples fill the slots from the front and padding from the back.
  const int slot = !out_of_order_ ? ticket.index
                   : ticket.index < batch.samples_ ? batch.next_slot_++
                                                   : --batch.next_tail_;
  std::memcpy(batch.data[slot].Prepare(row.size), row.data, row.size);
  if (session_->table().label_type == LabelType::kBlob) {
    std::memcpy(batch.label_blob[slot].Prepare(row.label_size), row.label, row.label_size);
  }
  batch.label_int[slot] = row.label_int;
  batch.slot_request[slot] = ticket.index;
  telemetry_->rows.fetch_add(1, std::memory_order_relaxed);
  telemetry_->bytes.fetch_add(static_cast<int64_t>(row.size), std::memory_order_relaxed);
  if (!telemetry_->hosts.empty()) {
    const int host =
        session_->ring().PrimaryReplica(UuidToken(batch.uuids_[ticket.index]));
    if (host >= 0 && host < static_cast<int>(telemetry_->hosts.size())) {
      telemetry_->reads_by_host[host].fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void ReadQueue::Finish(std::unique_ptr<ReadTicket> ticket) noexcept {
  telemetry_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  {
    Batch &batch = *ticket->batch;
    std::lock_guard<std::mutex> lock(batch.mutex_);
    if (--batch.pending_ == 0) {
      batch.landed_ = std::chrono::steady_clock::now();
      batch.done_cv_.notify_all();
    }
  }
  std::unique_ptr<ReadTicket> next;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!queued_.empty()) {
      next = std::move(queued_.front());  // our slot in flight goes to the oldest queued read
      queued_.pop_front();
    } else if (--in_flight_ == 0) {
      idle_cv_.notify_all();
    }
  }
  ticket.reset();
  if (next) Execute(std::move(next));
}

}  // namespace cassandra_dali
