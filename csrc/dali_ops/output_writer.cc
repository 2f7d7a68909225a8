#include "dali_ops/output_writer.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

namespace cassandra_dali {
namespace {

using Output = dali::TensorList<dali::CPUBackend>;

// Below this many bytes per task a copy is not worth a thread hand-off.
constexpr size_t kMinBytesPerTask = 1 << 20;

// Only for outputs that are not pinned (PathFor). Reset keeps what the executor set (pinning,
// device id, order); the samples must carry the same device id, or DALI refuses them.
void ShareSamples(Output &out, const std::vector<SampleBuffer> &buffers, int n) {
  out.Reset();
  const int device = out.device_id();
  out.set_type(DALI_UINT8);
  out.set_sample_dim(1);
  out.SetSize(n);
  for (int i = 0; i < n; ++i) {
    const auto &buffer = buffers[i];
    out.SetSample(i, std::shared_ptr<void>(buffer.memory()), buffer.size(), false,
                  dali::TensorShape<>{static_cast<int64_t>(buffer.size())}, DALI_UINT8, device,
                  dali::AccessOrder::host());
  }
}

void CopySamples(Output &out, const std::vector<SampleBuffer> &buffers, int n,
                 dali::ThreadPool *pool) {
  dali::TensorListShape<> shape(n, 1);
  size_t total = 0;
  for (int i = 0; i < n; ++i) {
    shape.set_tensor_shape(i, dali::TensorShape<>{static_cast<int64_t>(buffers[i].size())});
    total += buffers[i].size();
  }
  out.Resize(shape, DALI_UINT8);  // DALI allocates, pinned or not as the output says
  auto copy_range = [&out, &buffers](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      if (buffers[i].size()) {
        std::memcpy(out.mutable_tensor<uint8_t>(i), buffers[i].memory().get(), buffers[i].size());
      }
    }
  };
  const int threads = pool ? pool->NumThreads() : 1;
  const int tasks =
      static_cast<int>(std::min<size_t>(threads, std::max<size_t>(1, total / kMinBytesPerTask)));
  if (tasks <= 1) {
    copy_range(0, n);
    return;
  }
  // Ranges of about equal bytes, one per task.
  const size_t per_task = (total + tasks - 1) / tasks;
  int begin = 0;
  size_t bytes = 0;
  for (int i = 0; i < n; ++i) {
    bytes += buffers[i].size();
    if (bytes >= per_task || i == n - 1) {
      pool->AddWork([copy_range, begin, end = i + 1](int) { copy_range(begin, end); });
      begin = i + 1;
      bytes = 0;
    }
  }
  pool->RunAll();
}

void WriteSamples(Output &out, const std::vector<SampleBuffer> &buffers, int n,
                  dali::ThreadPool *pool) {
  if (PathFor(out) == OutputPath::kShare) {
    ShareSamples(out, buffers, n);
  } else {
    CopySamples(out, buffers, n, pool);
  }
}

// Small fixed-shape int32 labels: always written into DALI's own allocation.
void WriteIntLabels(Output &out, const std::vector<int32_t> *values, int n) {
  out.Resize(dali::uniform_list_shape(n, {values ? 1 : 0}), DALI_INT32);
  if (!values) return;
  for (int i = 0; i < n; ++i) *out.mutable_tensor<int32_t>(i) = (*values)[i];
}

}  // namespace

OutputPath PathFor(const Output &out) {
  // Pinned means a device copy will read it (asynchronously, on a stream): only memory that DALI
  // allocated and orders may be handed over then.
  return out.is_pinned() ? OutputPath::kCopy : OutputPath::kShare;
}

void WriteBatch(const Batch &batch, LabelType label_type, Output &data, Output &label,
                dali::ThreadPool *pool) {
  const int n = batch.size();
  WriteSamples(data, batch.data, n, pool);
  switch (label_type) {
    case LabelType::kBlob:
      WriteSamples(label, batch.label_blob, n, pool);
      break;
    case LabelType::kInt:
      WriteIntLabels(label, &batch.label_int, n);
      break;
    case LabelType::kNone:
      WriteIntLabels(label, nullptr, n);
      break;
  }
}

}  // namespace cassandra_dali
