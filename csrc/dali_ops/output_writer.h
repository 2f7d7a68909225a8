// Writes a fetched batch into the reader operators' two outputs (data, label).
//
// The executor decides, per output and per pipeline, how a CPU output's memory must be: pageable
// and device-less when only host code reads it (CPU operators, Python), pinned and bound to the
// pipeline's GPU when a mixed or GPU operator copies it to the device. The output's own
// is_pinned() and device_id() say which, and are never changed here. Accordingly:
// - host-read outputs share the batch's buffers (no copy); the engine reuses a buffer only once
//   nobody downstream holds it, and no GPU ever reads it;
// - device-read outputs get a copy into the memory DALI allocates for them, so the lifetime of
//   what the GPU reads is DALI's to order against its streams, never ours.
#pragma once

#include "dali/pipeline/data/tensor_list.h"
#include "dali/pipeline/util/thread_pool_interface.h"
#include "engine/batch_fetcher.h"
#include "engine/session.h"

namespace cassandra_dali {

// How one output is written.
enum class OutputPath { kShare, kCopy };

// The path for an output in the state the executor gave it.
OutputPath PathFor(const dali::TensorList<dali::CPUBackend> &out);

// Writes `batch` into `data` and `label`; `pool` (may be null) parallelises large copies.
void WriteBatch(const Batch &batch, LabelType label_type, dali::TensorList<dali::CPUBackend> &data,
                dali::TensorList<dali::CPUBackend> &label, dali::ThreadPool *pool);

}  // namespace cassandra_dali
