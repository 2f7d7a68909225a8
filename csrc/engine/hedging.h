// Hedged reads: a read still unanswered after a delay learned from recent latencies is sent
// once more, to the next replica of the driver's token-aware plan, and the first answer wins
// (docs/architecture.md, "Hedged reads"). The driver runs the second try (its speculative
// execution): the session registers one execution profile per step of a delay ladder and each
// read names the profile of the delay in force. This file holds the ladder and the estimator
// that picks the step; it knows nothing of the driver.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace cassandra_dali {

struct Replication;  // token_ring.h

// Whether a hedge always has a node to go to, one node down included: in each data center read
// from (`local_dc`; empty: all of them), three nodes or more and two replicas or more of a row.
// The driver drops a read's timeout when its hedge finds no node (down nodes are skipped), so
// with fewer the first try could wait without a bound. `host_dcs`: each node's data center.
bool RingLeavesHedgesANode(const std::vector<std::string> &host_dcs,
                           const Replication &replication, const std::string &local_dc);

// The delays the driver is given, in ms, about 1.25x apart: a step is what the estimator may
// move by, and each is an execution profile registered before the session connects.
const std::vector<int> &HedgeLadderMs();
const std::string &HedgeProfileName(int step);  // "cassandra_dali_hedge_12ms"

struct HedgeOutcome {
  bool hedged = false;  // the read outlived its delay: the driver sent the second try
  // ...and was not answered within a fast round trip of the hedge going out: its first try had
  // not answered by then, so the hedge may have (an answer sooner can only be the first try's).
  // The C API does not say which try answered (cass_future_coordinator gives a node per
  // future, with no accessor), so this is an upper bound: exact for a node that does not
  // answer at all, the case hedging is for.
  bool won = false;
};

// Learns the hedge delay from the last `window` reads: their p99.5, within a floor and a
// ceiling, and between 3 and 16 times their median. A bulk reader's latencies are wide (it
// issues a batch's reads at once and they queue: p99 over 10x the median on this project's test
// cluster), so the tail is what a hedge must wait past, and a read at a few medians is queued,
// not stuck: its hedge would only queue too. Two guards:
// - more than 1 % of the reads since the last estimate hedged moves the delay up a step,
//   whatever the p99.5 says (queueing that grows faster than the window follows, hedges
//   feeding it);
// - the cap of 16 medians bounds that climb while a minority of the reads is slow. A node
//   frozen mid-epoch sends a third of the reads (RF 3) past the delay, each lasting the delay
//   plus its hedge's time: the p99.5 and the hedge rate alone would walk the delay to the
//   ceiling, while the median moves only when most reads slow down (a longer route, a loaded
//   cluster), so the delay can still follow a real shift.
// It starts at the ceiling and comes down from the first estimate, after 64 reads.
// Thread-safe: reads end on the driver's I/O threads.
class HedgeDelay {
 public:
  struct Config {
    double quantile = 0.995;
    double median_factor = 16.0;     // the cap, in medians...
    double min_median_factor = 3.0;  // ...and the least
    double max_hedged = 0.01;        // of the window, before the delay steps up
    int window = 16384;         // latencies kept: a few bursts of a deep read-ahead
    int recompute_every = 512;  // reads between two estimates...
    int first_estimate = 64;    // ...and before the first
    int floor_ms = 4;
    int ceiling_ms = 2000;
  };
  explicit HedgeDelay(Config config);

  // The ladder step reads are issued at now.
  int step() const { return step_.load(std::memory_order_relaxed); }
  int delay_ms() const { return HedgeLadderMs()[step()]; }

  // A read issued at `step` was answered after `latency` (failures are not latencies).
  HedgeOutcome Observe(std::chrono::nanoseconds latency, int step);

 private:
  // From a copy of the window taken under mutex_, outside it: the selection takes ~0.2 ms,
  // which the other I/O threads' reads would otherwise wait behind.
  void Recompute(std::vector<uint32_t> latencies, int reads, int hedged);

  const Config config_;
  const int ceiling_step_;  // the highest step at or below the ceiling
  std::atomic<int> step_;
  std::atomic<uint32_t> fast_us_{0};  // the window's p10: a fast round trip
  std::mutex mutex_;
  std::vector<uint32_t> window_;  // microseconds, a ring
  size_t next_ = 0;
  int since_estimate_ = 0;
  int hedged_since_estimate_ = 0;
};

}  // namespace cassandra_dali
