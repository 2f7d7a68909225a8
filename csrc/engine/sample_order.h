// Which sample comes next: sharding, padding and per-epoch shuffling. Pure arithmetic, no I/O.
//
// Every rank draws the same permutation of the whole list from (seed, epoch), then takes its
// slice. The permutation is computed, not stored (a keyed bijection of [0, N)), so an order
// costs no memory whatever N is: shard i of S covers positions [N*i/S, N*(i+1)/S), so shards
// never overlap and together cover the list exactly once per epoch. Each shard is then padded,
// by repeating its own last sample, to ceil(ceil(N/S)/B) whole batches: every rank runs the
// same number of full batches (no rank waits for another at the end of an epoch), and DALI
// iterators with `reader_name` and a PARTIAL or DROP last-batch policy trim the padding
// (pad_last_batch is reported as set).
#pragma once

#include <cstdint>
#include <vector>

namespace cassandra_dali {

struct ShardLayout {
  // Throws ArgumentError for an empty list, shard_id >= num_shards, more shards than samples.
  ShardLayout(int64_t dataset_size, int num_shards, int shard_id, int batch_size);

  // 128-bit products: N * i overflows 64 bits for very large lists split many ways.
  int64_t Begin() const {
    return static_cast<int64_t>(static_cast<__int128>(dataset_size) * shard_id / num_shards);
  }
  int64_t End() const {
    return static_cast<int64_t>(static_cast<__int128>(dataset_size) * (shard_id + 1) /
                                num_shards);
  }
  int64_t Size() const { return End() - Begin(); }
  int64_t BatchesPerEpoch() const;
  int64_t PaddedShardSize() const { return BatchesPerEpoch() * batch_size; }
  int64_t PaddedEpochSize() const { return PaddedShardSize() * num_shards; }

  int64_t dataset_size;
  int num_shards;
  int shard_id;
  int batch_size;
};

// A keyed bijection of [0, size): a balanced Feistel network (6 rounds of a SplitMix64 mix) on
// the smallest 2^(2h) >= size, cycle-walked back into [0, size) (fewer than 4 steps on
// average). Fully specified here, so every build, compiler and machine, hence every rank,
// computes the same one; O(1) memory, about 60 ns per index (1,000,000 in 61 ms on this
// project's machine).
class IndexPermutation {
 public:
  IndexPermutation(int64_t size, uint64_t key);
  int64_t operator()(int64_t index) const;

 private:
  uint64_t Feistel(uint64_t value) const;

  int64_t size_;
  int half_bits_;
  uint64_t half_mask_;
  uint64_t round_keys_[6];
};

class EpochOrder {
 public:
  EpochOrder(const ShardLayout &layout, bool shuffle_every_epoch, uint64_t seed);

  // Source indices (into the UUID list) of batch `batch` (0..BatchesPerEpoch) of `epoch`.
  void BatchIndices(int64_t epoch, int64_t batch, std::vector<int64_t> &out) const;

  const ShardLayout &layout() const { return layout_; }

 private:
  ShardLayout layout_;
  bool shuffle_;
  uint64_t seed_;
};

// The permutation every rank uses for (seed, epoch).
IndexPermutation EpochPermutation(int64_t size, uint64_t seed, int64_t epoch);

}  // namespace cassandra_dali
