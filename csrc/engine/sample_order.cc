#include "engine/sample_order.h"

#include <numeric>
#include <string>

#include "engine/errors.h"

namespace cassandra_dali {
namespace {

uint64_t SplitMix64(uint64_t &state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, bound), Lemire's multiply-shift (its bias is below 2^-32 for our sizes).
uint64_t Below(uint64_t &state, uint64_t bound) {
  return static_cast<uint64_t>((static_cast<__uint128_t>(SplitMix64(state)) * bound) >> 64);
}

}  // namespace

ShardLayout::ShardLayout(int64_t size, int shards, int shard, int batch)
    : dataset_size(size), num_shards(shards), shard_id(shard), batch_size(batch) {
  if (dataset_size <= 0) throw ArgumentError("the UUID list is empty: nothing to read");
  if (num_shards < 1) throw ArgumentError("num_shards must be >= 1, got " + std::to_string(shards));
  if (shard_id < 0 || shard_id >= num_shards) {
    throw ArgumentError("shard_id " + std::to_string(shard_id) + " is out of range for num_shards " +
                        std::to_string(num_shards) + " (expected 0.." +
                        std::to_string(num_shards - 1) + ")");
  }
  if (batch_size < 1) throw ArgumentError("batch size must be >= 1");
  if (num_shards > dataset_size) {
    throw ArgumentError("num_shards " + std::to_string(num_shards) + " is larger than the " +
                        std::to_string(dataset_size) + " samples in the UUID list");
  }
}

int64_t ShardLayout::BatchesPerEpoch() const {
  const int64_t largest_shard = (dataset_size + num_shards - 1) / num_shards;
  return (largest_shard + batch_size - 1) / batch_size;
}

std::vector<int64_t> EpochPermutation(int64_t size, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(size);
  std::iota(perm.begin(), perm.end(), 0);
  uint64_t state = seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(epoch + 1));
  for (int64_t i = size - 1; i > 0; --i) {
    std::swap(perm[i], perm[Below(state, static_cast<uint64_t>(i) + 1)]);
  }
  return perm;
}

EpochOrder::EpochOrder(const ShardLayout &layout, bool shuffle_every_epoch, uint64_t seed)
    : layout_(layout), shuffle_(shuffle_every_epoch), seed_(seed) {}

void EpochOrder::PrepareEpoch(int64_t epoch) {
  if (epoch == prepared_epoch_) return;
  if (shuffle_) {
    permutation_ = EpochPermutation(layout_.dataset_size, seed_, epoch);
  } else if (permutation_.empty()) {
    permutation_.resize(layout_.dataset_size);
    std::iota(permutation_.begin(), permutation_.end(), 0);
  }
  prepared_epoch_ = epoch;
}

void EpochOrder::BatchIndices(int64_t epoch, int64_t batch, std::vector<int64_t> &out) {
  PrepareEpoch(epoch);
  out.resize(layout_.batch_size);
  const int64_t begin = layout_.Begin(), size = layout_.Size();
  for (int64_t k = 0; k < layout_.batch_size; ++k) {
    int64_t position = batch * layout_.batch_size + k;
    if (position >= size) position = size - 1;  // padding: repeat the shard's last sample
    out[k] = permutation_[begin + position];
  }
}

}  // namespace cassandra_dali
