// One batch of reads: the UUIDs asked for and, once every read has landed, a sample per slot.
// Its state is shared with the reads in flight (each holds the batch alive), so a batch given
// up on while reads are pending is freed only when the last of them ends.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/read_failures.h"
#include "engine/sample_buffer.h"
#include "engine/uuid.h"

namespace cassandra_dali {

class ReadQueue;
class BatchFetcher;

class Batch : public std::enable_shared_from_this<Batch> {
 public:
  int size() const { return static_cast<int>(uuids_.size()); }
  // From Start to the last read landing (retries included): the read-ahead's measure of the
  // link. Meaningful once the batch is complete.
  double LatencySeconds() const {
    return std::chrono::duration<double>(landed_ - started_).count();
  }
  // The UUIDs asked for, in request order, and each one's position in the source list (-1 when
  // it has none). They change only when no read of the batch is pending (Assign, and a bad
  // sample's substitute between two rounds of reads).
  const std::vector<UuidBytes> &uuids() const { return uuids_; }
  const std::vector<int64_t> &source_index() const { return source_index_; }

  // Sets what the batch reads and sizes its slots. Throws ReadError while reads of its earlier
  // contents are pending: their callbacks still read the UUIDs and write the slots.
  // `source_index` empty: -1 each. The first `samples` reads are samples, the rest padding
  // (-1: all are samples); out of order, padding lands in the last slots, where DALI's
  // iterators trim it.
  void Assign(const std::vector<UuidBytes> &uuids, const std::vector<int64_t> &source_index,
              int samples = -1);

  std::vector<int64_t> slot_request;  // output slot -> request index (identity unless ooo)
  std::vector<SampleBuffer> data;      // per output slot
  std::vector<SampleBuffer> label_blob;
  std::vector<int32_t> label_int;

 private:
  friend class ReadQueue;
  friend class BatchFetcher;
  struct RequestState {
    // Read again at the session's recheck (quorum) level: the row was missing at the weaker
    // one. Kept by later retries of the read; reset by Assign.
    bool recheck = false;
    // on_bad_sample="replace": the candidates read in place of a bad sample (bad_samples.h),
    // and the list position of the current one (-1: the sample itself); the read's UUID is
    // then the candidate's.
    int substitutes_tried = 0;
    int64_t candidate = -1;
  };

  std::vector<UuidBytes> uuids_;
  std::vector<int64_t> source_index_;
  std::vector<RequestState> requests_;
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  int pending_ = 0;  // reads issued and not ended
  int samples_ = 0;
  std::atomic<int> next_slot_{0};  // out of order: the next sample's slot from the front...
  std::atomic<int> next_tail_{0};  // ...and padding's from the back
  std::vector<ReadFailure> failures_;
  std::chrono::steady_clock::time_point started_, landed_;
};

}  // namespace cassandra_dali
