// The hedge delay estimator (hedging.h) on synthetic latencies: it settles near the p99.5 of a
// healthy spread, one frozen node out of three does not drag it to the ceiling, a shift of
// every read moves it up, a hedge rate over 1 % steps it up, and "won" needs the first try to
// have been silent past a fast round trip after the hedge.
#include <chrono>
#include <random>

#include "engine/hedging.h"
#include "engine/token_ring.h"
#include "testing/check.h"

namespace cassandra_dali {
namespace {

using std::chrono::microseconds;

// A read of `latency_us` issued at the estimator's current step.
HedgeOutcome Read(HedgeDelay &delay, double latency_us) {
  return delay.Observe(microseconds(static_cast<int64_t>(latency_us)), delay.step());
}

TEST_CASE(HedgeDelaySettlesNearTheTail, "hedging: the delay settles at the healthy p99.5") {
  HedgeDelay delay({});
  CHECK(delay.delay_ms() == 2000);  // from the ceiling down
  HedgeDelay::Config odd;
  odd.ceiling_ms = 1250;  // between two steps: the ladder's 1200, never 1500
  CHECK(HedgeDelay(odd).delay_ms() == 1200);
  std::mt19937 rng(1);
  std::lognormal_distribution<double> healthy(std::log(8000.0), 0.8);  // median 8 ms
  int hedged = 0;
  const int reads = 200000;
  for (int i = 0; i < reads; ++i) hedged += Read(delay, healthy(rng)).hedged;
  // p99.5 of this spread: exp(ln 8000 + 2.576 * 0.8) us = 63 ms; the ladder rounds up.
  CHECK(delay.delay_ms() >= 50 && delay.delay_ms() <= 100);
  CHECK(hedged < reads / 50);  // under 2 % hedged, the warm-up included
}

TEST_CASE(HedgeDelayIgnoresOneFrozenNode, "hedging: one frozen node in three leaves it bounded") {
  HedgeDelay delay({});
  std::mt19937 rng(2);
  std::lognormal_distribution<double> healthy(std::log(8000.0), 0.8);
  for (int i = 0; i < 50000; ++i) Read(delay, healthy(rng));
  const int settled = delay.delay_ms();
  // A third of the reads go first to a node that never answers: each ends when its hedge
  // answers, the delay plus a healthy read later.
  int longest = 0;
  for (int i = 0; i < 200000; ++i) {
    const double latency = i % 3 == 0 ? 1000.0 * delay.delay_ms() + healthy(rng) : healthy(rng);
    Read(delay, latency);
    longest = std::max(longest, delay.delay_ms());
  }
  // Bounded by 16 medians of the mixture (the healthy p75-ish, ~12 ms), far from 2 s.
  CHECK(longest <= 250);
  CHECK(settled <= 100);
}

TEST_CASE(HedgeDelayFollowsAShift, "hedging: when every read slows down, the delay follows") {
  HedgeDelay delay({});
  std::mt19937 rng(3);
  std::lognormal_distribution<double> near(std::log(2000.0), 0.3);
  for (int i = 0; i < 50000; ++i) Read(delay, near(rng));
  const int before = delay.delay_ms();
  std::lognormal_distribution<double> far(std::log(100000.0), 0.3);  // a 100 ms route
  int hedged = 0;
  for (int i = 0; i < 50000; ++i) hedged += Read(delay, far(rng)).hedged;
  CHECK(before <= 10);
  CHECK(delay.delay_ms() >= 150);  // p99.5 of the far spread: ~216 ms
  CHECK(hedged < 50000 / 2);      // caught up within a window, not hedging everything
}

TEST_CASE(HedgeDelayStepsUpPastTheRate, "hedging: over 1 % hedged, the delay steps up") {
  HedgeDelay delay({});
  std::mt19937 rng(4);
  std::lognormal_distribution<double> healthy(std::log(8000.0), 0.8);
  for (int i = 0; i < 50000; ++i) Read(delay, healthy(rng));
  // Queueing grows: 5 % of the reads outlive whatever the delay is, just.
  const int before = delay.delay_ms();
  int hedged = 0;
  for (int i = 0; i < 50000; ++i) {
    hedged += Read(delay, i % 20 == 0 ? 1050.0 * delay.delay_ms() : healthy(rng)).hedged;
  }
  CHECK(delay.delay_ms() > before);
  CHECK(delay.delay_ms() <= 150);  // up to 16 medians (~128 ms), not to the ceiling
  CHECK(hedged < 50000 / 10);
}

TEST_CASE(HedgeDelayCountsWins, "hedging: won only when the first try stayed silent") {
  HedgeDelay delay({});
  for (int i = 0; i < 1000; ++i) Read(delay, 2000 + (i % 100) * 10);  // p10 ~2.1 ms
  const double d = 1000.0 * delay.delay_ms();
  const auto quick = Read(delay, d + 500);  // sooner than any round trip: the first try's
  CHECK(quick.hedged && !quick.won);
  const auto late = Read(delay, d + 3000);
  CHECK(late.hedged && late.won);
  CHECK(!Read(delay, d - 100).hedged);
}

TEST_CASE(HedgingNeedsANodeLeftWithOneDown,
          "hedging: three nodes and two replicas in each data center read from, or none") {
  const auto simple = Replication::FromOptions({{"class", "SimpleStrategy"},
                                                {"replication_factor", "3"}});
  const auto rf1 = Replication::FromOptions({{"class", "SimpleStrategy"},
                                             {"replication_factor", "1"}});
  const std::vector<std::string> three(3, "dc1");
  CHECK(RingLeavesHedgesANode(three, simple, ""));
  CHECK(!RingLeavesHedgesANode({"dc1", "dc1"}, simple, ""));  // one down leaves one: no hedge
  CHECK(!RingLeavesHedgesANode(three, rf1, ""));
  CHECK(!RingLeavesHedgesANode({}, simple, ""));
  const auto nts = Replication::FromOptions({{"class", "NetworkTopologyStrategy"},
                                             {"dc1", "3"}, {"dc2", "1"}});
  const std::vector<std::string> two_dcs = {"dc1", "dc1", "dc1", "dc2"};
  CHECK(RingLeavesHedgesANode(two_dcs, nts, "dc1"));
  CHECK(!RingLeavesHedgesANode(two_dcs, nts, ""));     // dc2 is read from too: one node
  CHECK(!RingLeavesHedgesANode(two_dcs, nts, "dc3"));  // no such data center: nothing checked
  const auto local = Replication::FromOptions({{"class", "LocalStrategy"}});
  CHECK(!RingLeavesHedgesANode(three, local, ""));
}

}  // namespace
}  // namespace cassandra_dali
