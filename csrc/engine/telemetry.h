// What a reader is doing, counted as it happens and read from Python at any time: rows and
// bytes read, per-read latency (a histogram, for p50/p99), reads in flight, retries, errors,
// the time its consumer waited for data, the read-ahead depth, and rows read per node of the
// token ring. Counters are atomics updated on the driver's I/O threads and the consumer's
// thread; nothing here blocks a read.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cassandra_dali {

// Read latencies in quarter-octave buckets from 1 us to about 70 s: a quantile is known to
// within 19 %, which is what a p50/p99 needs, for 104 counters.
class LatencyHistogram {
 public:
  static constexpr int kBuckets = 104;
  void Record(std::chrono::nanoseconds latency);
  // The q-quantile (0 < q < 1) in seconds, the upper bound of its bucket; 0 with no reads.
  double Quantile(double q) const;
  int64_t Count() const;

 private:
  std::array<std::atomic<int64_t>, kBuckets> counts_{};
};

struct ReaderTelemetry {
  std::string name;   // telemetry_name (sources sets it to the operator's name=), else the table
  std::string table;  // keyspace.table
  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
  std::atomic<int64_t> rows{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> in_flight{0};
  // Reads issued again: after a transient failure, or at a quorum after no row below one.
  std::atomic<int64_t> retries{0};
  std::atomic<int64_t> errors{0};            // reads that failed (retried or not)
  std::atomic<int64_t> batches{0};           // handed to the consumer
  std::atomic<int64_t> consumer_waits{0};    // batches the consumer had to wait for
  std::atomic<int64_t> consumer_wait_ns{0};  // and how long, in all
  std::atomic<int> prefetch_depth{0};
  // Hedged reads (hedging.h): reads that outlived their hedge delay (a second try went to
  // another replica), those whose first try stayed silent a fast round trip past the hedge (an
  // upper bound of the hedges that answered first: HedgeOutcome), the delay in force (0: reads
  // are not hedged), and the driver's own count of speculative executions that answered after
  // another had (the losers that answered).
  std::atomic<int64_t> hedges_sent{0};
  std::atomic<int64_t> hedges_won{0};
  std::atomic<int> hedge_delay_ms{0};
  std::atomic<int64_t> driver_hedges_aborted{0};
  // Bad reads replaced by another sample (on_bad_sample="replace"): each time a bad sample is
  // met (again in every epoch) and each bad candidate read in its place.
  std::atomic<int64_t> bad_samples{0};
  LatencyHistogram read_latency;
  // Rows read, by the node that holds each: its primary replica in the token ring (each node's
  // share by its part of the ring; the node that served it only at RF 1: the C API does not
  // report the coordinator). Sized once, before any read, so counting takes no lock; empty
  // when the ring is unknown.
  std::vector<std::string> hosts;
  std::unique_ptr<std::atomic<int64_t>[]> reads_by_host;
  std::string token_ring;  // the ring as loaded, or why it is not known
};

// A new reader's counters, listed by LiveReaders() for as long as the reader holds them.
// `hosts`: the token ring's nodes (TokenRing::hosts()), counted per host.
std::shared_ptr<ReaderTelemetry> RegisterReader(std::string name, std::string table,
                                                std::vector<std::string> hosts = {},
                                                std::string token_ring = "");
std::vector<std::shared_ptr<const ReaderTelemetry>> LiveReaders();

}  // namespace cassandra_dali
