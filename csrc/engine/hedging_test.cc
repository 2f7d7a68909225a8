// The hedge delay estimator (hedging.h) on synthetic latencies: it settles near the p99.5 of a
// healthy spread, one frozen node out of three does not drag it to the ceiling, a shift of
// every read moves it up, and "won" follows the node that answered.
#include <chrono>
#include <random>
#include <thread>

#include "engine/hedging.h"
#include "testing/check.h"

namespace cassandra_dali {
namespace {

using std::chrono::microseconds;

// A read of `latency_us` issued at the estimator's current step, answered by `node`.
HedgeOutcome Read(HedgeDelay &delay, double latency_us, const void *node = nullptr,
                  int64_t range = -1) {
  return delay.Observe(microseconds(static_cast<int64_t>(latency_us)), delay.step(), node,
                       std::this_thread::get_id(), range);
}

TEST_CASE(HedgeDelaySettlesNearTheTail, "hedging: the delay settles at the healthy p99.5") {
  HedgeDelay delay({});
  CHECK(delay.delay_ms() == 2000);  // from the ceiling down
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
  CHECK(longest >= settled);
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

TEST_CASE(HedgeDelayCountsWins, "hedging: a hedged read answered by another node is won") {
  HedgeDelay delay({});
  int first = 0, second = 0;
  // Answered before the delay by `first`: that thread sends range 7's reads there first.
  CHECK(!Read(delay, 1000, &first, 7).hedged);
  const auto late = 1000.0 * delay.delay_ms() + 1000;
  const auto by_second = Read(delay, late, &second, 7);
  CHECK(by_second.hedged && by_second.won);
  const auto by_first = Read(delay, late, &first, 7);
  CHECK(by_first.hedged && !by_first.won);
  const auto unknown_range = Read(delay, late, &second, 8);
  CHECK(unknown_range.hedged && !unknown_range.won);
  const auto no_node = Read(delay, late, nullptr, 7);
  CHECK(no_node.hedged && !no_node.won);
}

}  // namespace
}  // namespace cassandra_dali
