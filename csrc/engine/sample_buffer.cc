#include "engine/sample_buffer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

namespace cassandra_dali {
namespace {

std::atomic<uint64_t> g_allocated_buffers{0};
std::atomic<uint64_t> g_allocated_bytes{0};

}  // namespace

AllocationStats SampleBufferAllocations() {
  return {g_allocated_buffers.load(), g_allocated_bytes.load()};
}

namespace {

// Room for a slot's next, slightly larger sample: an eighth more, in 64-byte steps (whole pages
// from 64 KiB on). Small samples then cost about what they hold, not a page each; slots that
// meet larger ones grow geometrically (Prepare).
size_t SlotCapacity(size_t fit) {
  const size_t step = fit >= (64u << 10) ? 4096 : 64;
  return (fit + fit / 8 + step - 1) / step * step;
}

}  // namespace

uint8_t *SampleBuffer::Prepare(size_t bytes) {
  constexpr size_t kPage = 4096;
  // Every this many uses, a slot more than twice the size of its largest sample in that window
  // is refitted: one outlier (a huge image) does not keep its memory for the rest of the run,
  // while ordinary spread in sizes never causes a reallocation.
  constexpr int kShrinkWindow = 16;
  window_max_ = std::max(window_max_, bytes);
  size_t fit = bytes;  // what a new allocation must hold with room to grow
  bool shrink = false;
  if (++window_uses_ == kShrinkWindow) {
    shrink = capacity_ > 2 * window_max_ + (window_max_ >= (64u << 10) ? kPage : 64);
    fit = window_max_;
    window_uses_ = 0;
    window_max_ = 0;
  }
  // use_count > 1: DALI (or a numpy array) still holds the previous contents.
  if (!memory_ || capacity_ < bytes || memory_.use_count() > 1 || shrink) {
    size_t capacity = SlotCapacity(fit);
    // Growing: by half at least, so a slot meeting ever larger samples reallocates a few
    // times, not at each new maximum.
    if (!shrink && capacity_ < bytes) capacity = std::max(capacity, capacity_ + capacity_ / 2);
    if (!shrink) capacity = std::max(capacity_, capacity);
    // malloc rather than new[]: no zeroing, and the bytes are overwritten at once.
    void *p = std::malloc(capacity ? capacity : 1);
    if (!p) throw std::bad_alloc();
    memory_.reset(static_cast<uint8_t *>(p), [](uint8_t *q) { std::free(q); });
    capacity_ = capacity;
    g_allocated_buffers.fetch_add(1, std::memory_order_relaxed);
    g_allocated_bytes.fetch_add(capacity, std::memory_order_relaxed);
  }
  size_ = bytes;
  return memory_.get();
}

}  // namespace cassandra_dali
