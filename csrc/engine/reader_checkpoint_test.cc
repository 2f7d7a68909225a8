// Checkpoint text and the elastic resume point: pure arithmetic, checked against brute force.
#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/errors.h"
#include "engine/reader_checkpoint.h"
#include "testing/check.h"

namespace cassandra_dali {
namespace {

ReaderIdentity Identity(int shards, int batch, int64_t list_size) {
  ReaderIdentity id;
  id.num_shards = shards;
  id.batch_size = batch;
  id.list_size = list_size;
  id.list_digest = 0xABCDEF;
  id.table = "ks.t";
  id.seed = 1234;
  id.shuffle_every_epoch = true;
  id.loop_forever = true;
  return id;
}

// The permutation positions of `rest` that `shards` ranks in lock-step did not deliver in
// `consumed` batches, by walking every shard's batches.
std::vector<int64_t> LeftByWalking(const EpochRemainder &rest, int64_t n, int shards, int batch,
                                   int64_t consumed) {
  const int64_t size = rest.Size(n);
  std::set<int64_t> delivered;
  std::vector<int64_t> positions;
  for (int s = 0; s < shards; ++s) {
    const SliceLayout slice{size, shards, s, batch};
    for (int64_t b = 0; b < std::min(consumed, slice.Batches()); ++b) {
      const int samples = slice.Positions(b, positions);
      for (int k = 0; k < samples; ++k) delivered.insert(rest.PositionAt(positions[k]));
    }
  }
  std::vector<int64_t> left;
  for (int64_t v = 0; v < size; ++v) {
    if (!delivered.count(rest.PositionAt(v))) left.push_back(rest.PositionAt(v));
  }
  return left;
}

std::vector<int64_t> Expand(const std::vector<EpochRemainder::Interval> &intervals) {
  std::vector<int64_t> out;
  for (const auto &[b, e] : intervals) {
    for (int64_t p = b; p < e; ++p) out.push_back(p);
  }
  return out;
}

TEST_CASE(LeftAfterMatchesWalking, "elastic: what is left is what no shard delivered, twice") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t n = 1 + rng() % 500;
    const int s1 = 1 + rng() % std::min<int64_t>(9, n), b1 = 1 + rng() % 20;
    const EpochRemainder whole;
    const int64_t k1 = rng() % (SliceLayout{n, s1, 0, b1}.Batches() + 1);
    const auto left1 = whole.LeftAfter(n, s1, b1, k1);
    CHECK(Expand(left1) == LeftByWalking(whole, n, s1, b1, k1));
    if (left1.empty()) continue;
    const EpochRemainder rest(left1);  // resumed, then cut again on another split
    const int s2 = 1 + rng() % 9, b2 = 1 + rng() % 20;
    const int64_t k2 = rng() % (SliceLayout{rest.Size(n), s2, 0, b2}.Batches() + 1);
    CHECK(Expand(rest.LeftAfter(n, s2, b2, k2)) == LeftByWalking(rest, n, s2, b2, k2));
  }
}

TEST_CASE(CheckpointRoundTrip, "checkpoint text: every field back, a negative seed too") {
  ReaderCheckpoint c;
  c.identity = Identity(3, 16, 203);
  c.identity.seed = static_cast<uint64_t>(int64_t{-1});
  c.identity.shard_id = 2;
  c.position.epoch = 4;
  c.position.batch = 2;
  c.position.rest = EpochRemainder({{3, 9}, {20, 40}});
  c.position.delivered_epoch = 4;
  c.position.delivered.Add(7);
  const std::string text = SerializeReaderCheckpoint(c);
  CHECK(text.find("seed=-1 ") != std::string::npos);
  const ReaderCheckpoint back = ParseReaderCheckpoint(text);
  CHECK(back.identity.seed == c.identity.seed && back.identity.shard_id == 2);
  CHECK(back.position.rest == c.position.rest && back.position.batch == 2);
  CHECK(back.position.delivered == c.position.delivered);
  CHECK(SerializeReaderCheckpoint(back) == text);
  CHECK(!testing::ThrownMessage<ArgumentError>(
             [] { ParseReaderCheckpoint("cassandra-reader-v2 epoch=1"); }).empty());
}

TEST_CASE(ResumePoints, "elastic: same split exact, another re-split, a complete epoch next") {
  ReaderCheckpoint saved;
  saved.identity = Identity(4, 16, 203);
  saved.position.epoch = 1;
  saved.position.batch = 2;
  saved.position.delivered_epoch = 1;
  saved.position.delivered.Add(3);
  ReaderPosition same = ResumePoint(saved, Identity(4, 16, 203));
  CHECK(same.epoch == 1 && same.batch == 2 && same.rest.whole());
  CHECK(same.delivered.count == 0);  // counted afresh after every resume
  ReaderPosition other = ResumePoint(saved, Identity(3, 16, 203));
  CHECK(other.epoch == 1 && other.batch == 0 && other.rest.Size(203) == 203 - 4 * 32);
  saved.position.batch = 4;  // ceil(ceil(203 / 4) / 16) batches: the epoch was complete
  ReaderPosition next = ResumePoint(saved, Identity(5, 8, 150));
  CHECK(next.epoch == 2 && next.batch == 0 && next.rest.whole());
  saved.position.batch = 1;
  ReaderIdentity seed = Identity(4, 16, 203);
  seed.seed = static_cast<uint64_t>(int64_t{-7});
  const auto message = testing::ThrownMessage<ArgumentError>([&] { ResumePoint(saved, seed); });
  CHECK(message.find("its shuffle_seed is 1234, this reader's is -7") != std::string::npos);
}

}  // namespace
}  // namespace cassandra_dali
