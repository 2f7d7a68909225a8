// The memory policy for samples: one growable host buffer per batch slot, shared downstream
// without a copy and reused once nobody holds it, so a running pipeline stops allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace cassandra_dali {

// Process-wide counters of sample buffer allocations (shared by the operator and the Python
// module, which link the same engine library): a running pipeline should stop allocating.
struct AllocationStats {
  uint64_t buffers = 0;
  uint64_t bytes = 0;
};
AllocationStats SampleBufferAllocations();

// A growable buffer of pageable host memory, handed downstream by sharing it; reused for a later
// batch only once nobody downstream holds it. It shrinks back after an outlier: a slot much
// larger than its recent samples is reallocated to fit.
class SampleBuffer {
 public:
  // Room for `bytes`, its previous contents gone; returns where to write them.
  uint8_t *Prepare(size_t bytes);
  const std::shared_ptr<uint8_t> &memory() const { return memory_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

 private:
  std::shared_ptr<uint8_t> memory_;
  size_t capacity_ = 0;
  size_t size_ = 0;
  int window_uses_ = 0;    // uses in the current shrink window
  size_t window_max_ = 0;  // largest sample in it
};

}  // namespace cassandra_dali
