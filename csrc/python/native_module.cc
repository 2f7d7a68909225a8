// cassandra_dali._native: the engine's Python face (thin). The DALI operator is the other face;
// both link the one engine library.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <memory>
#include <tuple>
#include <type_traits>
#include <variant>
#include <string>
#include <vector>

#include "engine/crc32c.h"
#include "engine/telemetry.h"
#include "engine/token_ring.h"
#include "engine/uuid_list.h"
#include "engine/errors.h"
#include "engine/reader_arguments.h"
#include "engine/loaders.h"
#include "engine/reader_checkpoint.h"

namespace py = pybind11;
using namespace cassandra_dali;  // NOLINT

namespace {

py::dict DriverInfoDict(const DriverInfo &info) {
  py::dict d;
  d["loaded"] = info.loaded;
  d["path"] = info.path;
  d["provider"] = info.provider;
  d["missing_optional"] = info.missing_optional;  // e.g. the ring's functions, in an old driver
  return d;
}

// A numpy view of a sample buffer that keeps the memory alive (no copy).
py::array ToArray(const SampleBuffer &buffer) {
  auto *owner = new std::shared_ptr<uint8_t>(buffer.memory());
  py::capsule free_owner(owner, [](void *p) { delete static_cast<std::shared_ptr<uint8_t> *>(p); });
  return py::array_t<uint8_t>({static_cast<py::ssize_t>(buffer.size())}, {1}, owner->get(),
                              free_owner);
}

template <typename T>
const char *PythonTypeName() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  if constexpr (std::is_integral_v<T>) return "int";
  if constexpr (std::is_same_v<T, std::string>) return "str";
  return "a list of str";
}

// A reader's counters as a dict (the keys of cassandra_dali.telemetry.ReaderStats).
py::dict TelemetryDict(const ReaderTelemetry &t) {
  py::dict d;
  d["name"] = t.name;
  d["table"] = t.table;
  d["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t.created).count();
  d["rows"] = t.rows.load();
  d["bytes"] = t.bytes.load();
  d["in_flight"] = t.in_flight.load();
  d["retries"] = t.retries.load();
  d["errors"] = t.errors.load();
  d["batches"] = t.batches.load();
  d["consumer_waits"] = t.consumer_waits.load();
  d["consumer_wait_seconds"] = t.consumer_wait_ns.load() / 1e9;
  d["prefetch_depth"] = t.prefetch_depth.load();
  d["hedges_sent"] = t.hedges_sent.load();
  d["hedges_won"] = t.hedges_won.load();
  d["hedge_delay_seconds"] = t.hedge_delay_ms.load() / 1e3;
  d["driver_hedges_aborted"] = t.driver_hedges_aborted.load();
  d["bad_samples"] = t.bad_samples.load();
  d["reads"] = t.read_latency.Count();
  d["latency_p50_seconds"] = t.read_latency.Quantile(0.5);
  d["latency_p99_seconds"] = t.read_latency.Quantile(0.99);
  py::dict by_host;
  for (size_t h = 0; h < t.hosts.size(); ++h) {
    by_host[py::str(t.hosts[h])] = t.reads_by_host[h].load();
  }
  d["reads_by_host"] = by_host;
  d["token_ring"] = t.token_ring;
  return d;
}

// A partition key given as a UUID's text (the reader's keys) or as its serialized bytes.
int64_t KeyToken(const std::variant<py::bytes, std::string> &key) {
  if (const auto *text = std::get_if<std::string>(&key)) {
    auto uuid = ParseUuid(*text);
    if (!uuid) throw ArgumentError("'" + Printable(*text) + "' is not a UUID");
    return UuidToken(*uuid);
  }
  const std::string bytes = std::get<py::bytes>(key);
  return Murmur3Token(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
}

// A token, or a key to compute it from.
using RingKey = std::variant<int64_t, py::bytes, std::string>;
int64_t AnyToken(const RingKey &key) {
  if (const auto *token = std::get_if<int64_t>(&key)) return *token;
  if (const auto *text = std::get_if<std::string>(&key)) return KeyToken(*text);
  return KeyToken(std::get<py::bytes>(key));
}

py::list HostNames(const TokenRing &ring, const std::vector<int> &indexes) {
  py::list out;
  for (int h : indexes) out.append(ring.hosts()[h]);
  return out;
}

// The Python face of a DirectLoader. Safe for concurrent callers: one read at a time, each
// holding the lock from the read to the end of its conversion to Python objects (the arrays
// share the batch's buffers, which the next reads of the ring may refill).
class PyReader {
 public:
  PyReader(const ConnectionOptions &connection, const TableSpec &table, const FetchOptions &fetch)
      : label_type_(table.label_type) {
    py::gil_scoped_release release;
    session_ = std::make_shared<const Session>(connection, table);
    reader_ = std::make_unique<DirectLoader>(session_, fetch);
  }

  const ReaderTelemetry &telemetry() const { return reader_->telemetry(); }
  const TokenRing &ring() const { return session_->ring(); }

  py::tuple Read(const std::vector<std::string> &texts) {
    std::vector<UuidBytes> uuids = ParseUuidList(texts);
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    const Batch *batch;
    {
      // The lock is taken without the GIL: a thread holding it needs the GIL to convert.
      py::gil_scoped_release release;
      lock.lock();
      batch = reader_->Read(uuids);
    }
    const int n = batch->size();
    py::list data, ids;
    for (int i = 0; i < n; ++i) {
      data.append(ToArray(batch->data[i]));
      ids.append(FormatUuid(batch->uuids()[batch->slot_request[i]]));
    }
    py::object labels = py::none();
    if (label_type_ == LabelType::kInt) {
      py::array_t<int32_t> ints(n);
      std::copy(batch->label_int.begin(), batch->label_int.begin() + n, ints.mutable_data());
      labels = ints;
    } else if (label_type_ == LabelType::kBlob) {
      py::list blobs;
      for (int i = 0; i < n; ++i) blobs.append(ToArray(batch->label_blob[i]));
      labels = blobs;
    }
    return py::make_tuple(data, labels, ids);
  }

 private:
  LabelType label_type_;
  std::shared_ptr<const Session> session_;
  std::unique_ptr<DirectLoader> reader_;
  std::mutex mutex_;
};

py::dict CheckpointDict(const ReaderCheckpoint &c) {
  py::dict d;
  const auto &p = c.position;
  d["version"] = c.version;
  d["epoch"] = p.epoch;
  d["batch"] = p.batch;
  py::list rest;
  for (const auto &[begin, end] : p.rest.intervals()) rest.append(py::make_tuple(begin, end));
  d["rest"] = rest;  // [] : the whole epoch
  if (c.version >= 2) {
    const auto &id = c.identity;
    d["num_shards"] = id.num_shards;
    d["shard_id"] = id.shard_id;
    d["batch_size"] = id.batch_size;
    d["list_size"] = id.list_size;
    d["list_digest"] = id.list_digest;
    d["table"] = id.table;
    d["shuffle_seed"] = id.seed;
    d["shuffle_every_epoch"] = id.shuffle_every_epoch;
    d["loop_forever"] = id.loop_forever;
    d["on_bad_sample"] = id.on_bad_sample;
    d["delivered_epoch"] = p.delivered_epoch;
    d["delivered"] = py::make_tuple(p.delivered.count, p.delivered.sum);
    d["batches_in_epoch"] = BatchesLeft(id, p.rest);
    d["remaining"] = p.rest.Size(id.list_size);  // samples of the epoch when it (re)started
  }
  return d;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "cassandra-dali engine bindings (use the cassandra_dali package instead)";
  m.attr("built_with_dali") = CASSANDRA_DALI_DALI_VERSION;

  auto base = py::register_exception<Error>(m, "CassandraDaliError", PyExc_RuntimeError);
  py::register_exception<ArgumentError>(m, "ArgumentError", PyExc_ValueError);
  py::register_exception<DriverLoadError>(m, "DriverLoadError", base);
  py::register_exception<ConnectionError>(m, "ConnectionError", base);
  py::register_exception<SchemaError>(m, "SchemaError", base);
  py::register_exception<MissingRowError>(m, "MissingRowError", base);
  py::register_exception<ReadError>(m, "ReadError", base);

  m.def("set_bundled_driver_path", &SetBundledDriverPath, py::arg("path"));
  m.def(
      "load_driver",
      [](const std::string &path) {
        LoadDriver(path);
        return DriverInfoDict(LoadedDriverInfo());
      },
      py::arg("path") = "",
      "Loads the Cassandra driver (once per process); returns driver_info().");
  m.def(
      "driver_info", [] { return DriverInfoDict(LoadedDriverInfo()); },
      "Which driver library is loaded: {'loaded', 'path', 'provider', 'missing_optional'} (the "
      "optional functions it lacks).");

  m.def(
      "parse_uuid",
      [](const std::string &text) {
        auto uuid = ParseUuid(text);
        if (!uuid) throw ArgumentError("'" + Printable(text) + "' is not a UUID");
        return py::bytes(reinterpret_cast<const char *>(uuid->data()), uuid->size());
      },
      py::arg("text"));
  m.def(
      "read_uuid_file",
      [](const std::string &path) {
        auto list = UuidList::FromFile(path);  // text or binary, as the reader opens it
        std::vector<int64_t> all(static_cast<size_t>(list->size()));
        for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
        std::vector<UuidBytes> uuids;
        list->Gather(all, uuids);
        std::vector<std::string> out;
        out.reserve(uuids.size());
        for (const auto &u : uuids) out.push_back(FormatUuid(u));
        return out;
      },
      py::arg("path"));
  m.def(
      "reader_telemetry",
      [] {
        py::list out;
        for (const auto &t : LiveReaders()) out.append(TelemetryDict(*t));
        return out;
      },
      "The counters of every reader alive in this process (DALI operators and Reader).");
  m.def(
      "sample_buffer_allocations",
      [] {
        auto stats = SampleBufferAllocations();
        py::dict d;
        d["buffers"] = stats.buffers;
        d["bytes"] = stats.bytes;
        return d;
      },
      "Sample buffers allocated so far in this process, by every reader (operator or Reader).");
  m.def(
      "canonical_identifier",
      [](const std::string &name, const std::string &what, const std::string &kind) {
        if (kind != "column" && kind != "keyspace_or_table") {
          throw ArgumentError("kind '" + Printable(kind) +
                              "' is not 'column' or 'keyspace_or_table'");
        }
        return CanonicalIdentifier(name, what,
                                   kind == "column" ? IdentifierKind::kColumn
                                                    : IdentifierKind::kKeyspaceOrTable);
      },
      py::arg("name"), py::arg("what") = "name", py::arg("kind") = "column",
      "The canonical form of a CQL identifier as the reader uses it (unquoted: lower-cased); "
      "ValueError naming `what` and the rule otherwise. kind 'keyspace_or_table': Cassandra's "
      "\\w+ of at most 48 characters, quoted or not.");
  m.def(
      "crc32c",
      [](py::buffer data) {
        py::buffer_info info = data.request();
        if (info.ndim > 1 || (info.ndim == 1 && info.strides[0] != info.itemsize)) {
          throw py::value_error("crc32c needs contiguous bytes");
        }
        const auto *bytes = static_cast<const uint8_t *>(info.ptr);
        const size_t size = static_cast<size_t>(info.size * info.itemsize);
        py::gil_scoped_release release;  // large samples: let other threads run
        return Crc32c(bytes, size);
      },
      py::arg("data"), "CRC32C (Castagnoli) of a bytes-like object, as the reader checks it.");

  m.def(
      "murmur3_token", &KeyToken, py::arg("key"),
      "Cassandra's Murmur3Partitioner token of a partition key: a UUID's text, or the key's "
      "serialized bytes (a UUID's 16 bytes), as the reader computes it.");

  py::class_<TokenRing>(m, "TokenRing",
                        "A cluster's token ring and a keyspace's replication: which nodes hold "
                        "which rows. Reader.token_ring() gives the one a reader loaded; build "
                        "one from nodes to check the placement.")
      .def(py::init([](const std::vector<std::tuple<std::string, std::string,
                                                    std::vector<int64_t>>> &nodes,
                       const std::map<std::string, std::string> &replication) {
             std::vector<RingNode> ring_nodes;
             for (const auto &[address, dc, tokens] : nodes) {
               ring_nodes.push_back({address, dc, tokens});
             }
             return TokenRing(std::move(ring_nodes), Replication::FromOptions(replication));
           }),
           py::arg("nodes"), py::arg("replication"),
           "nodes: (address, data center, tokens) each; replication: the keyspace's replication "
           "map, e.g. {'class': 'SimpleStrategy', 'replication_factor': '3'}.")
      .def_property_readonly("hosts", &TokenRing::hosts, "The nodes' addresses, in order.")
      .def_property_readonly("replication",
                             [](const TokenRing &r) { return r.replication().Describe(); })
      .def_property_readonly("error", &TokenRing::error,
                             "Why the ring or its replication is not known ('' if it is).")
      .def_property_readonly("token_count", &TokenRing::token_count)
      .def("describe", &TokenRing::Describe)
      .def(
          "primary_host",
          [](const TokenRing &r, const RingKey &key) -> py::object {
            const int host = r.PrimaryHost(AnyToken(key));
            return host < 0 ? py::object(py::none()) : py::object(py::str(r.hosts()[host]));
          },
          py::arg("key"),
          "The node owning the range of `key` (a token, a UUID's text or a key's bytes); None "
          "when the ring is empty.")
      .def(
          "replicas",
          [](const TokenRing &r, const RingKey &key) {
            return HostNames(r, r.Replicas(AnyToken(key)));
          },
          py::arg("key"),
          "The nodes holding `key` (a token, a UUID's text or a key's bytes), the primary "
          "replica first; [] when the replication is unknown. Racks are ignored.");

  m.def(
      "shard_layout",
      [](int64_t dataset_size, int num_shards, int shard_id, int batch_size) {
        ShardLayout l(dataset_size, num_shards, shard_id, batch_size);
        py::dict d;
        d["begin"] = l.Begin();
        d["end"] = l.End();
        d["size"] = l.Size();
        d["batches_per_epoch"] = l.BatchesPerEpoch();
        d["padded_shard_size"] = l.PaddedShardSize();
        d["padded_epoch_size"] = l.PaddedEpochSize();
        return d;
      },
      py::arg("dataset_size"), py::arg("num_shards"), py::arg("shard_id"), py::arg("batch_size"));
  m.def(
      "epoch_indices",
      [](int64_t dataset_size, int num_shards, int shard_id, int batch_size, int64_t epoch,
         bool shuffle, uint64_t seed) {
        ShardLayout layout(dataset_size, num_shards, shard_id, batch_size);
        EpochOrder order(layout, shuffle, seed);
        std::vector<int64_t> all, batch;
        for (int64_t b = 0; b < layout.BatchesPerEpoch(); ++b) {
          order.BatchIndices(epoch, b, batch);
          all.insert(all.end(), batch.begin(), batch.end());
        }
        return all;
      },
      py::arg("dataset_size"), py::arg("num_shards"), py::arg("shard_id"), py::arg("batch_size"),
      py::arg("epoch"), py::arg("shuffle") = true,
      py::arg("seed") = static_cast<uint64_t>(
                          std::get<int64_t>(DeclaredArgument("shuffle_seed").default_value)),
      "Source indices this shard reads in `epoch`, padding included (what fn.crs4.cassandra "
      "reads).");

  m.def(
      "parse_reader_checkpoint",
      [](const std::string &text) { return CheckpointDict(ParseReaderCheckpoint(text)); },
      py::arg("text"),
      "What a checkpoint string of fn.crs4.cassandra holds: version, epoch, batch, rest (the "
      "permutation intervals left of the epoch; [] for all), and for version 2 the shard count, "
      "shard, batch size, list size and digest, table, seed, order settings, and the digest "
      "(count, hash) of the samples its rank delivered of delivered_epoch.");
  m.def(
      "resume_point",
      [](const std::string &text, int num_shards, int shard_id, int batch_size) {
        const ReaderCheckpoint saved = ParseReaderCheckpoint(text);
        if (saved.version < 2) throw ArgumentError("a version 1 checkpoint resumes only exactly");
        ReaderIdentity current = saved.identity;
        current.num_shards = num_shards;
        current.shard_id = shard_id;
        current.batch_size = batch_size;
        const ReaderPosition next = ResumePoint(saved, current);
        return CheckpointDict(ReaderCheckpoint{2, next, current});
      },
      py::arg("text"), py::arg("num_shards"), py::arg("shard_id"), py::arg("batch_size"),
      "Where a reader with these shards and batch size continues the run the checkpoint was "
      "taken in (the same reader otherwise): epoch, batch, rest, remaining (samples left of "
      "the epoch), batches_in_epoch.");
  m.def(
      "epoch_digest",
      [](int64_t dataset_size) {
        const DeliveryDigest d = EpochDigest(dataset_size);
        return py::make_tuple(d.count, d.sum);
      },
      py::arg("dataset_size"),
      "(count, hash) of a whole epoch of a list of dataset_size samples: the ranks' delivered "
      "digests of an epoch add up to it (hashes mod 2**64) when each sample came once.");

  m.def(
      "reader_arguments",
      [] {
        py::list out;
        for (const auto &decl : ReaderArguments()) {
          py::dict d;
          d["name"] = decl.name;
          d["default"] = decl.required ? py::object(py::none())
                                       : std::visit([](const auto &v) { return py::cast(v); },
                                                    decl.default_value);
          d["doc"] = decl.doc;
          d["required"] = decl.required;
          d["python"] = decl.scope == ArgScope::kReader;
          d["scope"] = ArgScopeName(decl.scope);
          out.append(d);
        }
        return out;
      },
      "Every reader argument, declared once: name, default, doc, required, scope ('reader': "
      "both DALI operators and Reader; 'operators': both DALI operators; 'self_feed': "
      "fn.crs4.cassandra only) and python (whether Reader takes it).");

  py::class_<PyReader>(m, "Reader",
                       "Reads rows by UUID with the same engine as fn.crs4.cassandra, without "
                       "DALI. Takes the operators' shared arguments by keyword (see "
                       "reader_arguments()).")
      .def(py::init([](const std::string &table, const py::kwargs &kwargs) {
             for (const auto &item : kwargs) {
               const auto name = py::cast<std::string>(item.first);
               const auto &decls = ReaderArguments();
               if (name == "table" ||
                   std::none_of(decls.begin(), decls.end(), [&](const ArgumentDecl &d) {
                     return d.scope == ArgScope::kReader && name == d.name;
                   })) {
                 throw py::type_error("Reader() got an unexpected keyword argument '" + name +
                                      "' (cassandra_dali._native.reader_arguments() lists them)");
               }
             }
             ReaderSettings settings = SettingsFromArguments(
                 [&](const ArgumentDecl &decl) -> std::optional<ArgValue> {
               if (decl.required) return ArgValue(table);
               if (!kwargs.contains(decl.name)) return std::nullopt;
               return std::visit(
                   [&](const auto &default_value) -> ArgValue {
                     using T = std::decay_t<decltype(default_value)>;
                     try {
                       return py::cast<T>(kwargs[decl.name]);
                     } catch (const py::cast_error &) {
                       throw py::type_error(
                           std::string("Reader(): ") + decl.name + " must be " +
                           PythonTypeName<T>() + ", not " +
                           py::cast<std::string>(py::type::of(kwargs[decl.name]).attr("__name__")));
                     }
                   },
                   decl.default_value);
             });
             return std::make_unique<PyReader>(settings.connection, settings.table,
                                               settings.fetch);
           }),
           py::arg("table"))
      .def("telemetry", [](const PyReader &r) { return TelemetryDict(r.telemetry()); },
           "This reader's counters (see cassandra_dali.telemetry).")
      .def("token_ring", [](const PyReader &r) { return r.ring(); },
           "The token ring loaded when the reader connected (a copy).")
      .def(
          "replicas",
          [](const PyReader &r, const std::string &uuid) {
            return HostNames(r.ring(), r.ring().Replicas(KeyToken(uuid)));
          },
          py::arg("uuid"),
          "The nodes holding the row `uuid` in the reader's token ring, the primary replica "
          "first ([] if the ring or the replication is unknown).")
      .def("read", &PyReader::Read, py::arg("uuids"),
           "Reads the rows of `uuids`; returns (data: list of uint8 arrays, labels: int32 array "
           "| list of uint8 arrays | None, ids: the UUIDs in output order).");
}
