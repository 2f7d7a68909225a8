#include "engine/reader_checkpoint.h"

#include <cinttypes>
#include <cstdio>
#include <map>
#include <sstream>
#include <vector>

#include "engine/errors.h"

namespace cassandra_dali {
namespace {

uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string Hex(uint64_t value) {
  char text[19];
  std::snprintf(text, sizeof text, "%016" PRIx64, value);
  return text;
}

const char kTagV1[] = "cassandra-reader-v1";
const char kTagV2[] = "cassandra-reader-v2";

[[noreturn]] void Malformed(const std::string &text, const std::string &why) {
  throw ArgumentError("not a checkpoint of fn.crs4.cassandra (" + why + "): '" +
                      Printable(text, 200) + "'");
}

int64_t ToInt(const std::string &text, const std::string &key, const std::string &all) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used != text.size()) Malformed(all, key + " is not an integer");
    return value;
  } catch (const std::logic_error &) {
    Malformed(all, key + " is not an integer");
  }
}

uint64_t FromHex(const std::string &text, const std::string &key, const std::string &all) {
  try {
    size_t used = 0;
    const unsigned long long value = std::stoull(text, &used, 16);
    if (used != text.size() || text.empty()) Malformed(all, key + " is not hexadecimal");
    return value;
  } catch (const std::logic_error &) {
    Malformed(all, key + " is not hexadecimal");
  }
}

std::string Intervals(const EpochRemainder &rest) {
  if (rest.whole()) return "all";
  std::string text;
  for (const auto &[begin, end] : rest.intervals()) {
    if (!text.empty()) text += ',';
    text += std::to_string(begin);
    text += '-';
    text += std::to_string(end);
  }
  return text;
}

EpochRemainder ParseIntervals(const std::string &text, const std::string &all) {
  if (text == "all") return EpochRemainder();
  std::vector<EpochRemainder::Interval> intervals;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto dash = item.find('-');
    if (dash == std::string::npos) Malformed(all, "rest holds '" + item + "'");
    const int64_t begin = ToInt(item.substr(0, dash), "rest", all);
    const int64_t end = ToInt(item.substr(dash + 1), "rest", all);
    if (begin < 0 || end <= begin || (!intervals.empty() && begin < intervals.back().second)) {
      Malformed(all, "rest intervals are not ordered and disjoint");
    }
    intervals.emplace_back(begin, end);
  }
  if (intervals.empty()) Malformed(all, "rest is empty");
  return EpochRemainder(intervals);
}

// A mid-epoch resume must read the same order: each of these equal, or an error naming it.
void RequireSame(const std::string &field, const std::string &saved, const std::string &current,
                 const std::string &hint) {
  if (saved == current) return;
  throw ArgumentError("cannot resume this checkpoint mid-epoch: its " + field + " is " + saved +
                      ", this reader's is " + current + " (" + hint +
                      "). Resume with the same " + field + ", or from a checkpoint taken at an "
                      "epoch boundary");
}

}  // namespace

void DeliveryDigest::Add(int64_t source_index) {
  ++count;
  sum += Mix(static_cast<uint64_t>(source_index) + 0x9E3779B97F4A7C15ull);
}

DeliveryDigest &DeliveryDigest::operator+=(const DeliveryDigest &other) {
  count += other.count;
  sum += other.sum;
  return *this;
}

DeliveryDigest EpochDigest(int64_t dataset_size) {
  DeliveryDigest digest;
  for (int64_t i = 0; i < dataset_size; ++i) digest.Add(i);
  return digest;
}

std::string SerializeReaderCheckpoint(const ReaderCheckpoint &c) {
  const auto &p = c.position;
  const auto &id = c.identity;
  if (c.version == 1) {
    return std::string(kTagV1) + " " + std::to_string(p.epoch) + " " + std::to_string(p.batch);
  }
  return std::string(kTagV2) + " epoch=" + std::to_string(p.epoch) +
         " batch=" + std::to_string(p.batch) + " rest=" + Intervals(p.rest) +
         " shards=" + std::to_string(id.num_shards) + " shard=" + std::to_string(id.shard_id) +
         " batch_size=" + std::to_string(id.batch_size) +
         " list_size=" + std::to_string(id.list_size) + " list=" + Hex(id.list_digest) +
         " table=" + id.table + " seed=" + std::to_string(static_cast<int64_t>(id.seed)) +
         " shuffle_every_epoch=" + (id.shuffle_every_epoch ? "1" : "0") +
         " loop_forever=" + (id.loop_forever ? "1" : "0") +
         " on_bad_sample=" + id.on_bad_sample +
         " delivered_epoch=" + std::to_string(p.delivered_epoch) +
         " delivered=" + std::to_string(p.delivered.count) + ":" + Hex(p.delivered.sum);
}

ReaderCheckpoint ParseReaderCheckpoint(const std::string &text) {
  std::istringstream in(text);
  std::string tag;
  in >> tag;
  ReaderCheckpoint c;
  if (tag == kTagV1) {
    c.version = 1;
    if (!(in >> c.position.epoch >> c.position.batch) || c.position.epoch < 0 ||
        c.position.batch < 0) {
      Malformed(text, "expected 'cassandra-reader-v1 EPOCH BATCH'");
    }
    return c;
  }
  if (tag != kTagV2) Malformed(text, "no cassandra-reader tag");
  std::map<std::string, std::string> fields;
  std::string item;
  while (in >> item) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) Malformed(text, "'" + item + "' is not key=value");
    fields[item.substr(0, eq)] = item.substr(eq + 1);
  }
  auto get = [&](const char *key) {
    auto it = fields.find(key);
    if (it == fields.end()) Malformed(text, std::string(key) + " is missing");
    return it->second;
  };
  auto num = [&](const char *key) { return ToInt(get(key), key, text); };
  auto flag = [&](const char *key) {
    const std::string v = get(key);
    if (v != "0" && v != "1") Malformed(text, std::string(key) + " is not 0 or 1");
    return v == "1";
  };
  auto &p = c.position;
  auto &id = c.identity;
  p.epoch = num("epoch");
  p.batch = num("batch");
  p.rest = ParseIntervals(get("rest"), text);
  id.num_shards = static_cast<int>(num("shards"));
  id.shard_id = static_cast<int>(num("shard"));
  id.batch_size = static_cast<int>(num("batch_size"));
  id.list_size = num("list_size");
  id.list_digest = FromHex(get("list"), "list", text);
  id.table = get("table");
  id.seed = static_cast<uint64_t>(num("seed"));
  id.shuffle_every_epoch = flag("shuffle_every_epoch");
  id.loop_forever = flag("loop_forever");
  // Absent from checkpoints written before the policy existed: they raised on a bad sample.
  if (auto it = fields.find("on_bad_sample"); it != fields.end()) {
    if (it->second != "error" && it->second != "replace") {
      Malformed(text, "on_bad_sample is not error or replace");
    }
    id.on_bad_sample = it->second;
  }
  p.delivered_epoch = num("delivered_epoch");
  const std::string delivered = get("delivered");
  const auto colon = delivered.find(':');
  if (colon == std::string::npos) Malformed(text, "delivered is not COUNT:HASH");
  p.delivered.count = ToInt(delivered.substr(0, colon), "delivered", text);
  p.delivered.sum = FromHex(delivered.substr(colon + 1), "delivered", text);
  if (p.epoch < 0 || p.batch < 0 || id.num_shards < 1 || id.shard_id < 0 ||
      id.shard_id >= id.num_shards || id.batch_size < 1 || id.list_size < 1 ||
      (!p.rest.whole() && p.rest.intervals().back().second > id.list_size)) {
    Malformed(text, "values out of range");
  }
  return c;
}

int64_t BatchesLeft(const ReaderIdentity &identity, const EpochRemainder &rest) {
  return SliceLayout{rest.Size(identity.list_size), identity.num_shards, 0, identity.batch_size}
      .Batches();
}

ReaderPosition ResumePoint(const ReaderCheckpoint &saved, const ReaderIdentity &current) {
  const auto &was = saved.position;
  if (saved.version == 1) {
    // (epoch, batch) only: it continues readers of the same shard count, batch size and seed,
    // which it cannot record (the reader checks the batch is in range).
    return {was.epoch, was.batch, EpochRemainder(), was.epoch, DeliveryDigest()};
  }
  const auto &id = saved.identity;
  ReaderPosition next;
  if (was.batch >= BatchesLeft(id, was.rest)) {  // the epoch was complete
    next.epoch = next.delivered_epoch = was.epoch + 1;
    return next;
  }
  if (was.batch == 0 && was.rest.whole()) {  // at an epoch's start: any list or order may follow
    next.epoch = next.delivered_epoch = was.epoch;
    return next;
  }
  RequireSame("table", id.table, current.table, "another table holds other samples");
  RequireSame("UUID list", std::to_string(id.list_size) + " UUIDs (digest " +
                               Hex(id.list_digest) + ")",
              std::to_string(current.list_size) + " UUIDs (digest " +
                  Hex(current.list_digest) + ")",
              "a changed list is taken at the next epoch boundary");
  RequireSame("shuffle_seed", std::to_string(static_cast<int64_t>(id.seed)),
              std::to_string(static_cast<int64_t>(current.seed)),
              "the seed decides the order");
  RequireSame("shuffle_every_epoch", id.shuffle_every_epoch ? "True" : "False",
              current.shuffle_every_epoch ? "True" : "False", "it decides the order");
  RequireSame("loop_forever", id.loop_forever ? "True" : "False",
              current.loop_forever ? "True" : "False", "it decides where epochs end");
  if (id.num_shards == current.num_shards && id.batch_size == current.batch_size) {
    next = was;  // the same split: exactly where it was
    // Counted afresh, as after any resume: the checkpoint's digest is already counted.
    next.delivered = DeliveryDigest();
    return next;
  }
  // Another split: what no rank had delivered yet, re-split among this run's ranks.
  const auto left = was.rest.LeftAfter(id.list_size, id.num_shards, id.batch_size, was.batch);
  next.epoch = next.delivered_epoch = left.empty() ? was.epoch + 1 : was.epoch;
  next.rest = left.empty() ? EpochRemainder() : EpochRemainder(left);
  return next;
}

}  // namespace cassandra_dali
