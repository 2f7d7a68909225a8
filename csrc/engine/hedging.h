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
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cassandra_dali {

// The delays the driver is given, in ms, about 1.25x apart: a step is what the estimator may
// move by, and each is an execution profile registered before the session connects.
const std::vector<int> &HedgeLadderMs();
const std::string &HedgeProfileName(int step);  // "cassandra_dali_hedge_12ms"

struct HedgeOutcome {
  bool hedged = false;  // the read outlived its delay: the driver sent the second try
  bool won = false;     // ...and the second try answered (known only with the token ring)
};

// Learns the hedge delay from the last `window` reads: their p99, within a floor and a ceiling,
// and never above `median_factor` times their median. The p99 alone would follow one frozen
// node up: its reads (a third of them at RF 3) all outlive the delay, each lasting the delay
// plus its hedge's time, so every estimate would add the hedge's latency until the ceiling. The
// median moves only when most reads slow down (a longer route, a loaded cluster), so the cap
// bounds the climb while a minority of nodes is slow, and lets the delay follow a real shift.
// The factor is wide because a bulk reader's latencies are: it issues a batch's reads at once,
// and their queueing spreads them (p99 over 10x the median on this project's test cluster).
// It starts at the ceiling and comes down from the first estimate, after 64 reads.
//
// "Won" is known where the driver names the node that answered (cass_future_coordinator) and
// the token ring is loaded: with unshuffled token-aware routing each driver I/O thread sends a
// ring range's reads to one fixed replica first, learnt from the reads answered before their
// delay; a hedged read answered by another node was answered by its second try.
// Thread-safe: reads end on the driver's I/O threads.
class HedgeDelay {
 public:
  struct Config {
    double quantile = 0.995;
    double median_factor = 16.0;
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

  // A read issued at `step` ended after `latency`, answered by `node` (an opaque identity, null
  // when unknown) on driver thread `thread`, for a row in ring range `range` (-1: unknown).
  HedgeOutcome Observe(std::chrono::nanoseconds latency, int step, const void *node,
                       std::thread::id thread, int64_t range);

 private:
  void Recompute();  // under mutex_

  const Config config_;
  std::atomic<int> step_;
  std::mutex mutex_;
  std::vector<uint32_t> window_;  // microseconds, a ring
  size_t next_ = 0;
  int since_estimate_ = 0;
  // The node each driver thread first sends each ring range's reads to.
  std::map<std::pair<std::thread::id, int64_t>, const void *> first_try_;
};

}  // namespace cassandra_dali
