// SampleBuffer's memory policy: reuse once nobody holds a slot, refit after an outlier.
#include <cstring>

#include "engine/sample_buffer.h"
#include "testing/check.h"

namespace cassandra_dali {
namespace {

TEST_CASE(SlotReuseAndShrink, "sample buffer: slots are reused, and shrink after an outlier") {
  SampleBuffer buffer;
  const uint8_t *first = buffer.Prepare(3000);
  CHECK(buffer.Prepare(2900) == first);
  buffer.Prepare(8 << 20);  // an outlier
  CHECK(buffer.capacity() >= (8u << 20));
  // Two shrink windows at most; the last sample of each window is the smallest.
  for (int i = 0; i < 32; ++i) buffer.Prepare(i % 2 ? 100 : 3000);
  CHECK(buffer.capacity() < (1u << 20));
  CHECK(buffer.capacity() >= 3000);  // refitted to the window's largest, not to its last
  const uint8_t *refitted = buffer.Prepare(3000);
  CHECK(buffer.Prepare(3000) == refitted);
}

TEST_CASE(HeldSlotNotOverwritten, "sample buffer: a slot still held downstream gets new memory") {
  SampleBuffer buffer;
  std::memset(buffer.Prepare(4096), 7, 4096);
  std::shared_ptr<uint8_t> held = buffer.memory();  // what DALI or numpy keeps
  uint8_t *next = buffer.Prepare(4096);
  CHECK(next != held.get());
  CHECK(held.get()[4095] == 7);
  const auto before = SampleBufferAllocations();
  held.reset();
  CHECK(buffer.Prepare(4000) == next);  // nobody holds it now: reused, no allocation
  CHECK(SampleBufferAllocations().buffers == before.buffers);
}

}  // namespace
}  // namespace cassandra_dali
