#include "engine/sample_order.h"

#include <algorithm>
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

}  // namespace

ShardLayout::ShardLayout(int64_t size, int shards, int shard, int batch)
    : dataset_size(size), num_shards(shards), shard_id(shard), batch_size(batch) {
  if (dataset_size <= 0) throw ArgumentError("the UUID list is empty: nothing to read");
  if (num_shards < 1) throw ArgumentError("num_shards must be >= 1, got " + std::to_string(shards));
  if (shard_id < 0 || shard_id >= num_shards) {
    throw ArgumentError("shard_id " + std::to_string(shard_id) +
                        " is out of range for num_shards " + std::to_string(num_shards) +
                        " (expected 0.." +
                        std::to_string(num_shards - 1) + ")");
  }
  if (batch_size < 1) throw ArgumentError("batch size must be >= 1");
  if (dataset_size > (int64_t{1} << 62)) {
    throw ArgumentError("the UUID list holds " + std::to_string(size) +
                        " samples; at most 2^62 are supported");
  }
  if (num_shards > dataset_size) {
    throw ArgumentError("num_shards " + std::to_string(num_shards) + " is larger than the " +
                        std::to_string(dataset_size) + " samples in the UUID list");
  }
}

IndexPermutation::IndexPermutation(int64_t size, uint64_t key) : size_(size) {
  int bits = 2;
  while (bits < 62 && (int64_t{1} << bits) < size) bits += 2;
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  uint64_t state = key;
  for (auto &round_key : round_keys_) round_key = SplitMix64(state);
}

uint64_t IndexPermutation::Feistel(uint64_t value) const {
  uint64_t left = value >> half_bits_, right = value & half_mask_;
  for (uint64_t round_key : round_keys_) {
    uint64_t mixed = right ^ round_key;
    const uint64_t f = SplitMix64(mixed) & half_mask_;
    const uint64_t next = left ^ f;
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

int64_t IndexPermutation::operator()(int64_t index) const {
  // Cycle walking: a bijection of the larger domain, applied again until it lands in range,
  // is a bijection of [0, size).
  uint64_t value = static_cast<uint64_t>(index);
  do {
    value = Feistel(value);
  } while (value >= static_cast<uint64_t>(size_));
  return static_cast<int64_t>(value);
}

IndexPermutation EpochPermutation(int64_t size, uint64_t seed, int64_t epoch) {
  return IndexPermutation(size, seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(epoch + 1)));
}

EpochOrder::EpochOrder(const ShardLayout &layout, bool shuffle_every_epoch, uint64_t seed)
    : layout_(layout), shuffle_(shuffle_every_epoch), seed_(seed) {}

void EpochOrder::BatchIndices(int64_t epoch, int64_t batch, std::vector<int64_t> &out) const {
  BatchIndices(epoch, EpochRemainder(), batch, out);
}

namespace {

int64_t Share(int64_t size, int64_t part, int64_t parts) {
  return static_cast<int64_t>(static_cast<__int128>(size) * part / parts);
}

}  // namespace

int64_t SliceLayout::Begin() const { return Share(size, shard_id, num_shards); }
int64_t SliceLayout::End() const { return Share(size, shard_id + 1, num_shards); }

int64_t SliceLayout::Batches() const {
  const int64_t largest_shard = (size + num_shards - 1) / num_shards;
  return (largest_shard + batch_size - 1) / batch_size;
}

int SliceLayout::Positions(int64_t batch, std::vector<int64_t> &out) const {
  out.resize(batch_size);
  const int64_t begin = Begin(), shard_size = End() - begin;
  int samples = 0;
  for (int64_t k = 0; k < batch_size; ++k) {
    const int64_t position = batch * batch_size + k;
    if (position < shard_size) {
      out[k] = begin + position;
      ++samples;
    } else {  // padding: repeat the shard's last sample (an empty shard: the slice's last)
      out[k] = shard_size > 0 ? begin + shard_size - 1 : size - 1;
    }
  }
  return samples;
}

EpochRemainder::EpochRemainder(const std::vector<Interval> &intervals) {
  for (const auto &[begin, end] : intervals) {
    if (end <= begin) continue;
    if (!intervals_.empty() && intervals_.back().second == begin) {
      intervals_.back().second = end;
    } else {
      intervals_.emplace_back(begin, end);
    }
  }
  int64_t at = 0;
  for (const auto &[begin, end] : intervals_) {
    starts_.push_back(at);
    at += end - begin;
  }
}

int64_t EpochRemainder::Size(int64_t dataset_size) const {
  if (whole()) return dataset_size;
  return starts_.back() + intervals_.back().second - intervals_.back().first;
}

int64_t EpochRemainder::PositionAt(int64_t v) const {
  if (whole()) return v;
  const size_t i = std::upper_bound(starts_.begin(), starts_.end(), v) - starts_.begin() - 1;
  return intervals_[i].first + (v - starts_[i]);
}

std::vector<EpochRemainder::Interval> EpochRemainder::LeftAfter(int64_t dataset_size,
                                                                int num_shards, int batch_size,
                                                                int64_t consumed) const {
  const int64_t size = Size(dataset_size);
  std::vector<Interval> left;
  for (int shard = 0; shard < num_shards; ++shard) {
    const SliceLayout slice{size, num_shards, shard, batch_size};
    const int64_t begin = slice.Begin(), end = slice.End();
    const int64_t delivered = static_cast<int64_t>(
        std::min<__int128>(static_cast<__int128>(consumed) * batch_size, end - begin));
    // Virtual [begin + delivered, end) back to permutation positions, interval by interval.
    for (int64_t v = begin + delivered; v < end;) {
      if (whole()) {
        left.emplace_back(v, end);
        break;
      }
      const size_t i = std::upper_bound(starts_.begin(), starts_.end(), v) - starts_.begin() - 1;
      const int64_t offset = v - starts_[i];
      const int64_t run =
          std::min(end - v, intervals_[i].second - intervals_[i].first - offset);
      left.emplace_back(intervals_[i].first + offset, intervals_[i].first + offset + run);
      v += run;
    }
  }
  return left;
}

SliceLayout EpochOrder::Slice(const EpochRemainder &rest) const {
  return {rest.Size(layout_.dataset_size), layout_.num_shards, layout_.shard_id,
          layout_.batch_size};
}

int64_t EpochOrder::Batches(const EpochRemainder &rest) const {
  return Slice(rest).Batches();
}

int EpochOrder::BatchIndices(int64_t epoch, const EpochRemainder &rest, int64_t batch,
                             std::vector<int64_t> &out) const {
  const int samples = Slice(rest).Positions(batch, out);
  const IndexPermutation permutation = EpochPermutation(layout_.dataset_size, seed_, epoch);
  for (auto &index : out) {
    const int64_t position = rest.PositionAt(index);
    index = shuffle_ ? permutation(position) : position;
  }
  return samples;
}

}  // namespace cassandra_dali
