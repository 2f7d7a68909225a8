// Tests of output_writer against each state DALI's executor gives a CPU output, with no GPU:
// DALI's pinned memory resource is replaced by a host one that records its allocations, so
// "pinned" outputs allocate, and the test can tell DALI's memory from the engine's.
//   output_writer_test          runs every case; prints "N passed, N failed"; exit 1 on failure
// (The sample buffers' own tests are in engine/sample_buffer_test.cc.)
//   output_writer_test --bench  what the copy into DALI's outputs costs against sharing
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dali/core/mm/default_resources.h"
#include "dali/core/mm/memory_resource.h"
#include "dali/pipeline/util/thread_pool.h"
#include "dali_ops/output_writer.h"
#include "testing/check.h"

namespace cassandra_dali {
namespace {

using Output = dali::TensorList<dali::CPUBackend>;

// Host memory standing in for cudaMallocHost; remembers what it handed out.
class RecordingPinnedResource : public dali::mm::pinned_async_resource {
 public:
  bool Owns(const void *p) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto &[base, size] : blocks_) {
      auto *b = static_cast<const char *>(base);
      if (p >= b && p < b + size) return true;
    }
    return false;
  }

 private:
  void *do_allocate(size_t bytes, size_t alignment) override {
    void *p = std::aligned_alloc(std::max<size_t>(alignment, 64), (bytes + 63) / 64 * 64 + 64);
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_.emplace_back(p, bytes);
    return p;
  }
  void do_deallocate(void *p, size_t, size_t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
      if (it->first == p) {
        blocks_.erase(it);
        break;
      }
    }
    std::free(p);
  }
  void *do_allocate_async(size_t bytes, size_t alignment, dali::mm::stream_view) override {
    return do_allocate(bytes, alignment);
  }
  void do_deallocate_async(void *p, size_t bytes, size_t alignment,
                           dali::mm::stream_view) override {
    do_deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const dali::mm::memory_resource<dali::mm::memory_kind::pinned> &other)
      const noexcept override {
    return this == &other;
  }

  mutable std::mutex mutex_;
  std::vector<std::pair<void *, size_t>> blocks_;
};

RecordingPinnedResource *g_pinned = nullptr;

// The states DALI's executor gives a CPU output before RunImpl (see output_writer.h): a host-read
// output is neither pinned nor bound to a device; a device-read one is pinned and bound to the
// pipeline's GPU, with host order, whether a mixed operator or .gpu() reads it.
struct OutputState {
  const char *name;
  bool pinned;
  int device_id;
  OutputPath expected;
};

const OutputState kStates[] = {
    {"host-read (CPU operator or Python, any pipeline)", false, dali::CPU_ONLY_DEVICE_ID,
     OutputPath::kShare},
    {"pinned for a mixed consumer (nvJPEG)", true, 0, OutputPath::kCopy},
    {"pinned for a GPU consumer (.gpu()) on device 1", true, 1, OutputPath::kCopy},
};

// A batch as the fetcher leaves it: sample i holds bytes derived from (seed, i).
void Fill(Batch &batch, const std::vector<size_t> &sizes, int seed) {
  const int n = static_cast<int>(sizes.size());
  batch.Assign(std::vector<UuidBytes>(n), {});
  for (int i = 0; i < n; ++i) {
    uint8_t *d = batch.data[i].Prepare(sizes[i]);
    for (size_t k = 0; k < sizes[i]; ++k) d[k] = static_cast<uint8_t>(seed * 31 + i * 7 + k);
    uint8_t *l = batch.label_blob[i].Prepare(32);
    for (size_t k = 0; k < 32; ++k) l[k] = static_cast<uint8_t>(seed + i + k * 3);
    batch.label_int[i] = seed * 1000 + i;
    batch.slot_request[i] = i;
  }
}

Output MakeOutput(const OutputState &state) {
  Output out;
  out.set_pinned(state.pinned);
  out.set_device_id(state.device_id);
  return out;
}

// The bytes, shape and type of each sample, and where its memory comes from.
void ExpectSamples(const Output &out, const std::vector<SampleBuffer> &buffers, int n,
                   OutputPath path) {
  CHECK(out.num_samples() == n);
  CHECK(out.type() == DALI_UINT8);
  for (int i = 0; i < n; ++i) {
    CHECK(out.tensor_shape(i) == dali::TensorShape<>{static_cast<int64_t>(buffers[i].size())});
    const uint8_t *p = out.tensor<uint8_t>(i);
    CHECK(buffers[i].size() == 0 ||
          std::memcmp(p, buffers[i].memory().get(), buffers[i].size()) == 0);
    if (buffers[i].size() == 0) continue;
    if (path == OutputPath::kShare) {
      CHECK(p == buffers[i].memory().get());  // zero copy
    } else {
      CHECK(p != buffers[i].memory().get());
      CHECK(g_pinned->Owns(p));  // DALI's (pinned) allocation, not the engine's buffer
    }
  }
}

void ExpectState(const Output &out, const OutputState &state) {
  CHECK(out.is_pinned() == state.pinned);
  CHECK(out.device_id() == state.device_id);
}

void TestWrite(const OutputState &state, LabelType label_type) {
  Batch batch;
  Output data = MakeOutput(state), label = MakeOutput(state);
  CHECK(PathFor(data) == state.expected);
  // Two iterations on the same outputs, as a reused workspace gets them; one sample is empty.
  for (int iteration = 0; iteration < 2; ++iteration) {
    std::vector<size_t> sizes = {1000, 0, 5000 + 10 * static_cast<size_t>(iteration), 17, 40000};
    Fill(batch, sizes, iteration + 1);
    const int n = static_cast<int>(sizes.size());
    WriteBatch(batch, label_type, data, label, nullptr);
    ExpectState(data, state);
    ExpectState(label, state);
    ExpectSamples(data, batch.data, n, state.expected);
    switch (label_type) {
      case LabelType::kInt:
        CHECK(label.type() == DALI_INT32 && label.num_samples() == n);
        for (int i = 0; i < n; ++i) {
          CHECK(label.tensor_shape(i) == dali::TensorShape<>{1});
          CHECK(*label.tensor<int32_t>(i) == batch.label_int[i]);
          if (state.pinned) CHECK(g_pinned->Owns(label.tensor<int32_t>(i)));
        }
        break;
      case LabelType::kBlob:
        ExpectSamples(label, batch.label_blob, n, state.expected);
        break;
      case LabelType::kNone:
        CHECK(label.type() == DALI_INT32 && label.num_samples() == n);
        for (int i = 0; i < n; ++i) CHECK(label.tensor_shape(i) == dali::TensorShape<>{0});
        break;
    }
  }
}

// While DALI holds a shared sample, the engine must not write into it: the next batch in that
// slot gets new memory and the output keeps its bytes.
void TestSharedSampleIsNotOverwritten() {
  Batch batch;
  Output data = MakeOutput(kStates[0]), label = MakeOutput(kStates[0]);
  Fill(batch, {4096, 4096}, 1);
  WriteBatch(batch, LabelType::kInt, data, label, nullptr);
  std::vector<uint8_t> before(data.tensor<uint8_t>(0), data.tensor<uint8_t>(0) + 4096);
  const uint8_t *held = data.tensor<uint8_t>(0);
  Fill(batch, {4096, 4096}, 2);  // the next batch lands in the same slots
  CHECK(batch.data[0].memory().get() != held);
  CHECK(std::memcmp(data.tensor<uint8_t>(0), before.data(), before.size()) == 0);
}

// Large copies run on the operator's thread pool and still land sample for sample.
void TestParallelCopy() {
  dali::OldThreadPool pool(4, dali::CPU_ONLY_DEVICE_ID, false, "output-writer-test");
  Batch batch;
  std::vector<size_t> sizes;
  for (int i = 0; i < 97; ++i) sizes.push_back(20000 + 977 * static_cast<size_t>(i));
  Fill(batch, sizes, 3);
  Output data = MakeOutput(kStates[1]), label = MakeOutput(kStates[1]);
  WriteBatch(batch, LabelType::kBlob, data, label, &pool);
  ExpectState(data, kStates[1]);
  ExpectSamples(data, batch.data, 97, OutputPath::kCopy);
  ExpectSamples(label, batch.label_blob, 97, OutputPath::kCopy);
}

// The cost of the copy path: batches of 256 samples of ~40 KB (a 320-px JPEG), written into
// fresh "pinned" outputs each time, as DALI's executor gives them (host memory standing in for
// cudaMallocHost: the same bandwidth), by 1 and by 4 threads, against the zero-copy path.
void Bench() {
  constexpr int kBatch = 256, kRounds = 200;
  Batch batch;
  std::vector<size_t> sizes;
  for (int i = 0; i < kBatch; ++i) sizes.push_back(30000 + (i * 7919) % 20000);
  Fill(batch, sizes, 1);
  size_t bytes = 0;
  for (size_t s : sizes) bytes += s;
  dali::OldThreadPool pool(4, dali::CPU_ONLY_DEVICE_ID, false, "output-writer-bench");
  auto time = [&](const OutputState &state, dali::ThreadPool *p) {
    auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < kRounds; ++r) {
      Output data = MakeOutput(state), label = MakeOutput(state);
      WriteBatch(batch, LabelType::kInt, data, label, p);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
           kRounds;
  };
  const double share = time(kStates[0], nullptr);
  const double copy1 = time(kStates[1], nullptr);
  const double copy4 = time(kStates[1], &pool);
  auto line = [&](const char *what, double s) {
    std::printf("%-28s %8.1f us/batch %8.2f us/sample %7.2f GB/s\n", what, s * 1e6,
                s * 1e6 / kBatch, bytes / s / 1e9);
  };
  std::printf("batch of %d samples, %.1f KB on average\n", kBatch, bytes / 1e3 / kBatch);
  line("share (zero copy)", share);
  line("copy, 1 thread", copy1);
  line("copy, 4-thread pool", copy4);
  std::printf("at 52k samples/s the copy takes %.0f%% of one core\n",
              52000.0 * copy1 / kBatch * 100);
}

}  // namespace
}  // namespace cassandra_dali

int main(int argc, char **argv) {
  using namespace cassandra_dali;           // NOLINT
  using namespace cassandra_dali::testing;  // NOLINT
  auto resource = std::make_shared<RecordingPinnedResource>();
  g_pinned = resource.get();
  dali::mm::SetDefaultResource<dali::mm::memory_kind::pinned>(resource);
  if (argc > 1 && std::string(argv[1]) == "--bench") {
    Bench();
    return 0;
  }
  const std::pair<LabelType, const char *> labels[] = {
      {LabelType::kInt, "int"}, {LabelType::kBlob, "blob"}, {LabelType::kNone, "none"}};
  for (const auto &state : kStates) {
    for (const auto &[type, name] : labels) {
      Run(std::string(state.name) + ", labels " + name, [&] { TestWrite(state, type); });
    }
  }
  Run("a shared sample is not overwritten while DALI holds it", TestSharedSampleIsNotOverwritten);
  Run("large copies on the thread pool", TestParallelCopy);
  return Summary();
}
