// The read path against a fake driver (testing/fake_driver.h): reads that never end, that end
// at once inside cass_future_set_callback, that land late into batches given up on, and many
// landing concurrently from the fake's I/O threads. Run under ASan and TSan too (make sanitize,
// make tsan).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/batch_fetcher.h"
#include "engine/errors.h"
#include "engine/loaders.h"
#include "engine/reader_arguments.h"
#include "testing/check.h"
#include "testing/fake_driver.h"

namespace cassandra_dali {
namespace {

using testing::FakeOutcome;
using Clock = std::chrono::steady_clock;

FakeOutcome Always(FakeOutcome::Kind kind, CassError error = CASS_ERROR_LIB_NO_HOSTS_AVAILABLE) {
  FakeOutcome outcome;
  outcome.kind = kind;
  outcome.error = error;
  return outcome;
}

void Behave(FakeOutcome outcome) {
  testing::InstallFakeDriver([outcome](const UuidBytes &) { return outcome; });
}

// Short timeouts: a read's bound is request_timeout_ms, the drain's that plus the margin.
ReaderSettings FastSettings() {
  ReaderSettings s = DefaultReaderSettings("ks.t");
  s.connection.request_timeout_ms = 50;
  s.fetch.retry_budget_ms = 0;
  s.fetch.landing_margin_ms = 60;
  return s;
}

std::shared_ptr<const Session> FakeSession(const ReaderSettings &s) {
  return std::make_shared<const Session>(s.connection, s.table, Session::Unconnected{});
}

std::vector<UuidBytes> Uuids(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<UuidBytes> out(n);
  for (auto &u : out) {
    for (auto &b : u) b = static_cast<uint8_t>(rng());
  }
  return out;
}

// Every slot holds the row of the UUID it says it holds, and every UUID is there once.
bool Holds(const Batch &batch, const std::vector<UuidBytes> &uuids) {
  if (batch.uuids() != uuids) return false;
  std::set<int> requests;
  for (int slot = 0; slot < batch.size(); ++slot) {
    const int request = static_cast<int>(batch.slot_request[slot]);
    const auto expected = testing::FakeSampleBytes(uuids[request]);
    const auto &buffer = batch.data[slot];
    if (buffer.size() != expected.size() ||
        !std::equal(expected.begin(), expected.end(), buffer.memory().get()) ||
        batch.label_int[slot] != uuids[request][0]) {
      return false;
    }
    requests.insert(request);
  }
  return static_cast<int>(requests.size()) == batch.size();
}

TEST_CASE(LateCallbacksAfterShutdown,
          "fetcher: callbacks landing after the shutdown bound touch nothing freed") {
  Behave(Always(FakeOutcome::kNever));
  const auto futures_before = testing::FakeFuturesAlive();
  const ReaderSettings s = FastSettings();
  {
    auto fetcher = std::make_unique<BatchFetcher>(FakeSession(s), s.fetch);
    Batch *batch = fetcher->NewBatch();
    fetcher->Start(batch, Uuids(8, 1));
    const auto started = Clock::now();
    fetcher.reset();  // gives up after request_timeout_ms + landing_margin_ms
    CHECK(Clock::now() - started < std::chrono::seconds(5));
  }
  CHECK(testing::ParkedReads() == 8);
  testing::ReleaseParkedReads(/*as_rows=*/true);  // into the batch of a fetcher that is gone
  CHECK(testing::ParkedReads() == 0);
  CHECK(testing::FakeFuturesAlive() == futures_before);
}

TEST_CASE(PendingBatchReplaced,
          "direct loader: a batch with reads still pending is replaced, not refilled") {
  Behave(Always(FakeOutcome::kNever));
  const ReaderSettings s = FastSettings();
  DirectLoader loader(FakeSession(s), s.fetch);
  const auto stuck = Uuids(16, 2);
  CHECK(!testing::ThrownMessage<ReadError>([&] { loader.Read(stuck); }).empty());
  Behave(Always(FakeOutcome::kRow));
  // Around the ring of kBatchesHeldDownstream + 1 slots, back to the stuck one.
  std::vector<UuidBytes> uuids;
  const Batch *batch = nullptr;
  for (int k = 0; k <= kBatchesHeldDownstream; ++k) {
    uuids = Uuids(4, 10 + k);  // smaller than the stuck batch
    batch = loader.Read(uuids);
    CHECK(Holds(*batch, uuids));
  }
  testing::ReleaseParkedReads(/*as_rows=*/true);  // the stuck reads land late, with rows
  CHECK(Holds(*batch, uuids));
}

TEST_CASE(SeekDropsPendingReads,
          "prefetching loader: a restore drops reads in flight without waiting for them") {
  Behave(Always(FakeOutcome::kNever));
  const ReaderSettings s = FastSettings();
  SelfFeedSettings feed = SelfFeedSettingsFromArguments(
      [](const ArgumentDecl &) -> std::optional<ArgValue> { return std::nullopt; });
  const auto list = Uuids(64, 3);
  for (const auto &u : list) feed.source_uuids.push_back(FormatUuid(u));
  PrefetchingLoader loader(FakeSession(s), feed, 8, s.fetch);
  CHECK(!testing::ThrownMessage<ReadError>([&] { loader.Next(); }).empty());
  const auto started = Clock::now();
  ReaderPosition position;
  position.batch = 3;
  loader.Seek(position);
  CHECK(Clock::now() - started < std::chrono::milliseconds(500));
  Behave(Always(FakeOutcome::kRow));
  const Batch *batch = loader.Next();
  EpochOrder order(ShardLayout(64, 1, 0, 8), feed.shuffle_every_epoch, feed.shuffle_seed);
  std::vector<int64_t> indices;
  order.BatchIndices(0, 3, indices);
  std::vector<UuidBytes> expected;
  for (int64_t i : indices) expected.push_back(list[i]);
  CHECK(batch->source_index() == indices);
  CHECK(Holds(*batch, expected));
  testing::ReleaseParkedReads(/*as_rows=*/true);
  CHECK(Holds(*batch, expected));
}

TEST_CASE(SynchronousFailuresDoNotRecurse,
          "fetcher: 200,000 queued reads failing inside set_callback: no recursion") {
  // The first read is at the driver (one in flight) while the others queue behind it; when it
  // ends, each queued read the driver then fails at once hands its slot to the next one.
  const auto uuids = Uuids(200000, 4);
  const UuidBytes first = uuids[0];
  testing::InstallFakeDriver([first](const UuidBytes &u) {
    FakeOutcome outcome = Always(u == first ? FakeOutcome::kFailLater : FakeOutcome::kFailNow,
                                 CASS_ERROR_SERVER_INVALID_QUERY);
    outcome.delay_us = 20000;
    return outcome;
  });
  ReaderSettings s = FastSettings();
  s.connection.request_timeout_ms = 5000;
  s.fetch.max_in_flight = 1;
  BatchFetcher fetcher(FakeSession(s), s.fetch);
  Batch *batch = fetcher.NewBatch();
  const auto executed = testing::FakeReadsExecuted();
  fetcher.Start(batch, uuids);
  const auto message = testing::ThrownMessage<ReadError>([&] { fetcher.Wait(batch); });
  CHECK(message.find("fake: failed") != std::string::npos);
  CHECK(message.find("199999 more failed reads") != std::string::npos);
  CHECK(testing::FakeReadsExecuted() - executed == 200000);
  CHECK(fetcher.Landed(batch));
}

TEST_CASE(MissingRowByKind, "fetcher: a row missing at the quorum too is a MissingRowError") {
  const auto uuids = Uuids(6, 5);
  const UuidBytes missing = uuids[4];
  testing::InstallFakeDriver([missing](const UuidBytes &u) {
    return Always(u == missing ? FakeOutcome::kNoRow : FakeOutcome::kRow);
  });
  const ReaderSettings s = FastSettings();
  DirectLoader loader(FakeSession(s), s.fetch);
  const auto executed = testing::FakeReadsExecuted();
  const auto message = testing::ThrownMessage<MissingRowError>([&] { loader.Read(uuids); });
  CHECK(message.find("no row with id " + FormatUuid(missing)) != std::string::npos);
  CHECK(message.find("again at LOCAL_QUORUM") != std::string::npos);
  CHECK(testing::FakeReadsExecuted() - executed == 7);  // the missing one read twice
}

TEST_CASE(BadSamplesReplacedByTheNextGoodOne,
          "fetcher: on_bad_sample=replace reads the next good sample of the list in its place") {
  const auto list = Uuids(10, 9);
  // Positions 3 (missing) and 4 (missing too): 3's substitute is 5, the next that reads well.
  testing::InstallFakeDriver([missing = std::set<UuidBytes>{list[3], list[4]}](const UuidBytes &u) {
    return Always(missing.count(u) ? FakeOutcome::kNoRow : FakeOutcome::kRow);
  });
  const ReaderSettings s = FastSettings();
  BatchFetcher fetcher(FakeSession(s), s.fetch);
  const std::string quarantine = "/tmp/cassandra-dali-engine-test-quarantine-" +
                                 std::to_string(::getpid()) + ".jsonl";
  std::remove(quarantine.c_str());
  fetcher.ReplaceBadSamples(
      std::make_unique<BadSamples>(UuidList::InMemory(list), "ks.t", quarantine));
  Batch *batch = fetcher.NewBatch();
  const std::vector<int64_t> positions = {2, 3, 9};
  fetcher.Start(batch, {list[2], list[3], list[9]}, positions);
  fetcher.Wait(batch);
  CHECK(Holds(*batch, {list[2], list[5], list[9]}));
  CHECK(batch->source_index() == positions);  // the position is what was delivered
  CHECK(fetcher.telemetry().bad_samples.load() == 2);  // 3, then its first candidate 4
  std::ifstream in(quarantine);
  std::string first, second, third;
  std::getline(in, first);
  std::getline(in, second);
  CHECK(!std::getline(in, third));
  CHECK(first.find("\"uuid\": \"" + FormatUuid(list[3]) + "\"") != std::string::npos);
  CHECK(first.find("\"reason\": \"missing_row\"") != std::string::npos);
  CHECK(second.find("\"uuid\": \"" + FormatUuid(list[4]) + "\"") != std::string::npos);
  // Met again (another epoch): replaced the same way, at once (4 is not read again), said and
  // quarantined once.
  fetcher.Start(batch, {list[3]}, {3});
  fetcher.Wait(batch);
  CHECK(Holds(*batch, {list[5]}));
  CHECK(fetcher.telemetry().bad_samples.load() == 3);
  std::ifstream again(quarantine);
  int lines = 0;
  for (std::string line; std::getline(again, line);) ++lines;
  CHECK(lines == 2);
  std::remove(quarantine.c_str());
}

TEST_CASE(BadSampleWalkIsBounded,
          "fetcher: a long run of bad samples is an error naming the table, not a list walk") {
  const auto list = Uuids(200, 11);
  std::set<UuidBytes> missing(list.begin() + 1, list.begin() + 150);
  testing::InstallFakeDriver([missing](const UuidBytes &u) {
    return Always(missing.count(u) ? FakeOutcome::kNoRow : FakeOutcome::kRow);
  });
  const ReaderSettings s = FastSettings();
  BatchFetcher fetcher(FakeSession(s), s.fetch);
  fetcher.ReplaceBadSamples(std::make_unique<BadSamples>(
      UuidList::InMemory(list), "ks.t", "/dev/null/not-a-file"));  // unwritable: said, not fatal
  Batch *batch = fetcher.NewBatch();
  const auto executed = testing::FakeReadsExecuted();
  fetcher.Start(batch, {list[0], list[1]}, {0, 1});
  const auto message = testing::ThrownMessage<ReadError>([&] { fetcher.Wait(batch); });
  CHECK(message.find("samples after it in the list are bad too") != std::string::npos);
  CHECK(testing::FakeReadsExecuted() - executed <= 2 + 2 * (BadSamples::kMaxCandidates + 1));
}

TEST_CASE(BadSampleWithoutPolicyRaises, "fetcher: without a policy a bad sample still raises") {
  const auto list = Uuids(4, 10);
  testing::InstallFakeDriver([missing = list[1]](const UuidBytes &u) {
    return Always(u == missing ? FakeOutcome::kNoRow : FakeOutcome::kRow);
  });
  const ReaderSettings s = FastSettings();
  BatchFetcher fetcher(FakeSession(s), s.fetch);
  Batch *batch = fetcher.NewBatch();
  fetcher.Start(batch, {list[0], list[1]}, {0, 1});
  CHECK(!testing::ThrownMessage<MissingRowError>([&] { fetcher.Wait(batch); }).empty());
}

TEST_CASE(TransientFailuresRetried, "fetcher: a timed-out read is retried within the budget") {
  auto failed_once = std::make_shared<std::set<UuidBytes>>();
  auto mutex = std::make_shared<std::mutex>();
  testing::InstallFakeDriver([=](const UuidBytes &u) {
    std::lock_guard<std::mutex> lock(*mutex);
    if (failed_once->insert(u).second) {
      return Always(FakeOutcome::kFailLater, CASS_ERROR_LIB_REQUEST_TIMED_OUT);
    }
    return Always(FakeOutcome::kRow);
  });
  ReaderSettings s = FastSettings();
  s.fetch.retry_budget_ms = 5000;
  s.fetch.retry_backoff_ms = 1;
  DirectLoader loader(FakeSession(s), s.fetch);
  const auto uuids = Uuids(32, 6);
  const Batch *batch = loader.Read(uuids);
  CHECK(Holds(*batch, uuids));
  CHECK(loader.telemetry().retries.load() == 32);
}

// Many batches in flight, landing on two I/O threads in any order, the cap handing slots over
// from those threads: every epoch holds each sample once, with its own bytes.
void ReadEpochs(bool out_of_order) {
  testing::InstallFakeDriver([](const UuidBytes &u) {
    FakeOutcome outcome = Always(FakeOutcome::kRow);
    outcome.delay_us = (u[1] % 8) * 40;
    return outcome;
  });
  ReaderSettings s = FastSettings();
  s.connection.request_timeout_ms = 2000;
  s.fetch.max_in_flight = 5;
  s.fetch.out_of_order = out_of_order;
  SelfFeedSettings feed = SelfFeedSettingsFromArguments(
      [](const ArgumentDecl &) -> std::optional<ArgValue> { return std::nullopt; });
  const auto list = Uuids(500, 8);
  for (const auto &u : list) feed.source_uuids.push_back(FormatUuid(u));
  feed.prefetch.min_batches = 4;
  PrefetchingLoader loader(FakeSession(s), feed, 16, s.fetch);
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    for (int b = 0; b < 32; ++b) {  // ceil(500 / 16): the last one padded
      const Batch *batch = loader.Next();
      std::vector<UuidBytes> expected;
      for (int64_t i : batch->source_index()) expected.push_back(list[i]);
      CHECK(Holds(*batch, expected));
      seen.insert(batch->source_index().begin(), batch->source_index().end());
    }
    CHECK(seen.size() == 500);
    CHECK(loader.position().epoch == epoch + 1);
  }
}

TEST_CASE(OutOfOrderPaddingLast, "fetcher: out of order, padding lands in the last slots") {
  testing::InstallFakeDriver([](const UuidBytes &u) {
    FakeOutcome outcome = Always(FakeOutcome::kRow);
    outcome.delay_us = (u[2] % 4) * 300;  // padding may land before samples
    return outcome;
  });
  ReaderSettings s = FastSettings();
  s.connection.request_timeout_ms = 2000;
  s.fetch.out_of_order = true;
  BatchFetcher fetcher(FakeSession(s), s.fetch);
  for (int round = 0; round < 20; ++round) {
    Batch *batch = fetcher.NewBatch();
    const auto uuids = Uuids(16, 40 + round);
    fetcher.Start(batch, uuids, {}, 5);  // 5 samples, 11 reads of padding
    fetcher.Wait(batch);
    CHECK(Holds(*batch, uuids));
    for (int slot = 0; slot < 16; ++slot) CHECK((batch->slot_request[slot] < 5) == (slot < 5));
  }
}

TEST_CASE(ConcurrentLandingInOrder, "prefetching loader: concurrent landings, in order") {
  ReadEpochs(false);
}
TEST_CASE(ConcurrentLandingOutOfOrder, "prefetching loader: concurrent landings, ooo") {
  ReadEpochs(true);
}

}  // namespace
}  // namespace cassandra_dali
