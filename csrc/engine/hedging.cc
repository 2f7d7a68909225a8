#include "engine/hedging.h"

#include <map>

#include "engine/token_ring.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace cassandra_dali {

const std::vector<int> &HedgeLadderMs() {
  static const std::vector<int> kLadder = {
      1,   2,   3,   4,   5,   6,   8,   10,  12,  15,  20,   25,   30,   40,   50,  60,
      80,  100, 120, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000};
  return kLadder;
}

const std::string &HedgeProfileName(int step) {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (int ms : HedgeLadderMs()) {
      names.push_back("cassandra_dali_hedge_" + std::to_string(ms) + "ms");
    }
    return names;
  }();
  return kNames[step];
}

bool RingLeavesHedgesANode(const std::vector<std::string> &host_dcs,
                           const Replication &replication, const std::string &local_dc) {
  std::map<std::string, int> nodes_by_dc;
  for (const auto &dc : host_dcs) ++nodes_by_dc[dc];
  auto replicas_in = [&](const std::string &dc) {
    switch (replication.strategy) {
      case Replication::Strategy::kSimple: return replication.replication_factor;
      case Replication::Strategy::kNetworkTopology: {
        auto it = replication.by_dc.find(dc);
        return it == replication.by_dc.end() ? 0 : it->second;
      }
      default: return 0;
    }
  };
  bool checked = false;  // a local data center the ring does not list leaves nothing checked
  for (const auto &[dc, count] : nodes_by_dc) {
    if (!local_dc.empty() && dc != local_dc) continue;
    if (count < 3 || replicas_in(dc) < 2) return false;
    checked = true;
  }
  return checked;
}

namespace {

// The lowest step whose delay is at least `ms`, the last one past the ladder.
int StepAtLeast(double ms) {
  const auto &ladder = HedgeLadderMs();
  for (size_t i = 0; i < ladder.size(); ++i) {
    if (ladder[i] >= ms) return static_cast<int>(i);
  }
  return static_cast<int>(ladder.size()) - 1;
}

// The highest step whose delay is at most `ms`, the first one below the ladder.
int StepAtMost(double ms) {
  const auto &ladder = HedgeLadderMs();
  int step = 0;
  for (size_t i = 0; i < ladder.size(); ++i) {
    if (ladder[i] <= ms) step = static_cast<int>(i);
  }
  return step;
}

}  // namespace

HedgeDelay::HedgeDelay(Config config)
    : config_(config), ceiling_step_(StepAtMost(config.ceiling_ms)), step_(ceiling_step_) {
  window_.reserve(static_cast<size_t>(config_.window));
}

HedgeOutcome HedgeDelay::Observe(std::chrono::nanoseconds latency, int step) {
  const double micros = std::chrono::duration<double, std::micro>(latency).count();
  const double delay_us = 1000.0 * HedgeLadderMs()[step];
  HedgeOutcome outcome;
  outcome.hedged = micros >= delay_us;
  outcome.won = outcome.hedged &&
                micros >= delay_us + fast_us_.load(std::memory_order_relaxed);
  const auto kept = static_cast<uint32_t>(std::min(micros, 4e9));
  std::vector<uint32_t> latencies;
  int reads = 0, hedged = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (window_.size() < static_cast<size_t>(config_.window)) {
      window_.push_back(kept);
    } else {
      window_[next_] = kept;
      next_ = (next_ + 1) % window_.size();
    }
    hedged_since_estimate_ += outcome.hedged;
    // Early estimates at 64, 128, 256... reads: a reader's first seconds already hedge at a
    // delay of its own, not at the ceiling.
    const size_t due = std::min<size_t>(
        config_.recompute_every, std::max<size_t>(config_.first_estimate, window_.size() / 2));
    if (++since_estimate_ < static_cast<int>(due)) return outcome;
    latencies = window_;
    reads = std::exchange(since_estimate_, 0);
    hedged = std::exchange(hedged_since_estimate_, 0);
  }
  Recompute(std::move(latencies), reads, hedged);
  return outcome;
}

void HedgeDelay::Recompute(std::vector<uint32_t> sorted, int reads, int hedged) {
  auto at = [&](double q) {
    const size_t rank = std::min(sorted.size() - 1,
                                 static_cast<size_t>(std::ceil(q * double(sorted.size()))) - 1);
    std::nth_element(sorted.begin(), sorted.begin() + rank, sorted.end());
    return sorted[rank];
  };
  double ms = at(config_.quantile) / 1000.0;
  const double median_ms = at(0.5) / 1000.0;
  fast_us_.store(at(0.1), std::memory_order_relaxed);
  const int current = step_.load(std::memory_order_relaxed);
  // The rate since the last estimate: over the whole window it would keep stepping the delay up
  // long after the step that stopped the hedging.
  if (hedged > config_.max_hedged * double(reads)) {
    ms = std::max<double>(ms, HedgeLadderMs()[std::min<size_t>(current + 1,
                                                               HedgeLadderMs().size() - 1)]);
  }
  // A read at a few medians is queued, not stuck: its hedge would queue too.
  ms = std::max(ms, config_.min_median_factor * median_ms);
  const double ceiling_ms = std::min<double>(config_.ceiling_ms, config_.median_factor * median_ms);
  ms = std::max<double>(config_.floor_ms, std::min(ms, ceiling_ms));
  // The ladder rounds up, but never past the ceiling (the highest step at or below it).
  step_.store(std::min(StepAtLeast(ms), ceiling_step_), std::memory_order_relaxed);
}

}  // namespace cassandra_dali
