// The reads of one reader between the consumer and the driver: at most max_in_flight at the
// driver, the rest queued in order (retries first); each driver callback lands its row in its
// batch and hands its slot to the next queued read. Every read holds this queue, its batch and
// so the session alive until its callback has ended, so nothing a callback touches can be freed
// under it, whatever the consumer gave up on.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "engine/batch.h"
#include "engine/hedging.h"
#include "engine/session.h"
#include "engine/telemetry.h"

namespace cassandra_dali {

struct ReadTicket;

class ReadQueue : public std::enable_shared_from_this<ReadQueue> {
 public:
  ReadQueue(std::shared_ptr<const Session> session, int max_in_flight, bool out_of_order,
            std::shared_ptr<ReaderTelemetry> telemetry);
  ~ReadQueue();

  // Issues read `index` of `batch` now, or queues it behind the cap (`retry`: ahead of the
  // queued reads, so a batch being waited for is not stuck behind prefetches). The batch's
  // pending count must already include it.
  void Issue(const std::shared_ptr<Batch> &batch, int index, bool retry);

  // Fails every queued read as cancelled and waits up to `bound` for the reads at the driver to
  // end; true when none is left. Nothing may be issued after.
  bool Close(std::chrono::milliseconds bound);

  const Session &session() const { return *session_; }
  ReaderTelemetry &telemetry() const { return *telemetry_; }

 private:
  static void OnReadDone(CassFuture *future, void *data);
  // Starts the ticket's read and those that end at once inside it (the driver fails a read
  // synchronously when the session cannot take it): a loop, never a recursion.
  static void Execute(std::unique_ptr<ReadTicket> ticket);
  void Start(std::unique_ptr<ReadTicket> ticket) noexcept;
  void Complete(std::unique_ptr<ReadTicket> ticket, CassFuture *future) noexcept;
  // A row missing below a quorum: issues its read again at the quorum level, in the slot the
  // first read held, and returns true; false when already rechecked or nothing to recheck.
  bool Recheck(std::unique_ptr<ReadTicket> &ticket);
  // Feeds the hedge delay estimator and counts the read's hedge, if it had one.
  void ObserveHedge(const ReadTicket &ticket, std::chrono::nanoseconds latency) noexcept;
  void Land(const ReadTicket &ticket, const CassResult *result);
  void Fail(const ReadTicket &ticket, FailureKind kind, std::string message,
            CassError code = CASS_OK) noexcept;
  void Finish(std::unique_ptr<ReadTicket> ticket) noexcept;
  std::string Describe(const ReadTicket &ticket) const;
  // " (reading it again at LOCAL_QUORUM: no row at LOCAL_ONE)" for a rechecked read, else "".
  std::string RecheckNote(const ReadTicket &ticket) const;

  std::shared_ptr<const Session> session_;
  const int max_in_flight_;
  const bool out_of_order_;
  std::shared_ptr<ReaderTelemetry> telemetry_;
  std::unique_ptr<HedgeDelay> hedge_;  // null: reads are not hedged

  std::mutex mutex_;
  std::condition_variable idle_cv_;
  int in_flight_ = 0;
  bool closed_ = false;
  std::deque<std::unique_ptr<ReadTicket>> queued_;
};

}  // namespace cassandra_dali
