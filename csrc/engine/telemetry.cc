#include "engine/telemetry.h"

#include <algorithm>
#include <cmath>
#include <mutex>

namespace cassandra_dali {
namespace {

std::mutex g_registry_mutex;
std::vector<std::weak_ptr<ReaderTelemetry>> g_registry;

// Bucket b covers latencies up to 2^(b/4) us.
int BucketOf(double micros) {
  if (micros <= 1) return 0;
  const int bucket = static_cast<int>(std::ceil(4 * std::log2(micros)));
  return std::min(bucket, LatencyHistogram::kBuckets - 1);
}

}  // namespace

void LatencyHistogram::Record(std::chrono::nanoseconds latency) {
  counts_[BucketOf(latency.count() / 1e3)].fetch_add(1, std::memory_order_relaxed);
}

int64_t LatencyHistogram::Count() const {
  int64_t total = 0;
  for (const auto &count : counts_) total += count.load(std::memory_order_relaxed);
  return total;
}

double LatencyHistogram::Quantile(double q) const {
  std::array<int64_t, kBuckets> counts;
  int64_t total = 0;
  for (int b = 0; b < kBuckets; ++b) {
    total += counts[b] = counts_[b].load(std::memory_order_relaxed);
  }
  if (total == 0) return 0;
  const auto rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(total)));
  int64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts[b];
    if (seen >= rank) return std::exp2(b / 4.0) * 1e-6;
  }
  return std::exp2((kBuckets - 1) / 4.0) * 1e-6;
}

std::shared_ptr<ReaderTelemetry> RegisterReader(std::string name, std::string table,
                                                std::vector<std::string> hosts,
                                                std::string token_ring) {
  auto telemetry = std::make_shared<ReaderTelemetry>();
  telemetry->name = std::move(name);
  telemetry->table = std::move(table);
  // Filled before the registry lists it: readers of the telemetry never see it change.
  telemetry->reads_by_host = std::make_unique<std::atomic<int64_t>[]>(hosts.size());
  telemetry->hosts = std::move(hosts);
  telemetry->token_ring = std::move(token_ring);
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  std::erase_if(g_registry, [](const auto &entry) { return entry.expired(); });
  g_registry.push_back(telemetry);
  return telemetry;
}

std::vector<std::shared_ptr<const ReaderTelemetry>> LiveReaders() {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  std::vector<std::shared_ptr<const ReaderTelemetry>> live;
  for (const auto &entry : g_registry) {
    if (auto telemetry = entry.lock()) live.push_back(std::move(telemetry));
  }
  return live;
}

}  // namespace cassandra_dali
