// cassandra_dali._native: the engine's Python face (thin). The DALI operator is the other face;
// both link the one engine library.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/errors.h"
#include "engine/readers.h"

namespace py = pybind11;
using namespace cassandra_dali;  // NOLINT

namespace {

py::dict DriverInfoDict(const DriverInfo &info) {
  py::dict d;
  d["loaded"] = info.loaded;
  d["path"] = info.path;
  d["provider"] = info.provider;
  return d;
}

// A numpy view of a sample buffer that keeps the memory alive (no copy).
py::array ToArray(const SampleBuffer &buffer) {
  auto *owner = new std::shared_ptr<uint8_t>(buffer.memory());
  py::capsule free_owner(owner, [](void *p) { delete static_cast<std::shared_ptr<uint8_t> *>(p); });
  return py::array_t<uint8_t>({static_cast<py::ssize_t>(buffer.size())}, {1}, owner->get(),
                              free_owner);
}

class PyReader {
 public:
  PyReader(const ConnectionOptions &connection, const TableSpec &table, const FetchOptions &fetch)
      : label_type_(table.label_type) {
    py::gil_scoped_release release;
    reader_ = std::make_unique<DirectReader>(std::make_shared<const Session>(connection, table),
                                             fetch);
  }

  py::tuple Read(const std::vector<std::string> &texts) {
    std::vector<UuidBytes> uuids = ParseUuidList(texts);
    const Batch *batch;
    {
      py::gil_scoped_release release;
      batch = reader_->Read(uuids);
    }
    const int n = batch->size();
    py::list data, ids;
    for (int i = 0; i < n; ++i) {
      data.append(ToArray(batch->data[i]));
      ids.append(FormatUuid(batch->uuids[batch->slot_request[i]]));
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
  std::unique_ptr<DirectReader> reader_;
};

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
      py::arg("path") = "", "Loads the Cassandra driver (once per process); returns driver_info().");
  m.def(
      "driver_info", [] { return DriverInfoDict(LoadedDriverInfo()); },
      "Which driver library is loaded: {'loaded', 'path', 'provider'}.");

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
        std::vector<std::string> out;
        for (const auto &u : ReadUuidFile(path)) out.push_back(FormatUuid(u));
        return out;
      },
      py::arg("path"));
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
  m.def("canonical_identifier", &CanonicalIdentifier, py::arg("name"), py::arg("what") = "name");

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
      py::arg("epoch"), py::arg("shuffle") = true, py::arg("seed") = 1234,
      "Source indices this shard reads in `epoch`, padding included (what fn.crs4.cassandra "
      "reads).");

  py::class_<PyReader>(m, "Reader",
                       "Reads rows by UUID with the same engine as fn.crs4.cassandra, without "
                       "DALI.")
      .def(py::init([](const std::string &table, std::vector<std::string> cassandra_ips,
                       int cassandra_port, const std::string &id_col, const std::string &data_col,
                       const std::string &label_col, const std::string &label_type,
                       const std::string &username, const std::string &password,
                       const std::string &password_file, const std::string &password_env,
                       bool use_ssl,
                       const std::string &ssl_certificate, const std::string &ssl_own_certificate,
                       const std::string &ssl_own_key, const std::string &ssl_own_key_pass,
                       const std::string &ssl_verify, bool ssl_verify_identity,
                       int io_threads, int connections_per_host, const std::string &consistency,
                       int connect_timeout_ms, int request_timeout_ms, int retry_budget_ms,
                       int max_retries, int retry_backoff_ms, int max_requests_in_flight, bool ooo,
                       const std::string &driver_path) {
             ConnectionOptions c;
             c.contact_points = std::move(cassandra_ips);
             c.port = cassandra_port;
             c.username = username;
             c.password = password;
             c.password_file = password_file;
             c.password_env = password_env;
             c.use_ssl = use_ssl;
             c.ssl_certificate = ssl_certificate;
             c.ssl_own_certificate = ssl_own_certificate;
             c.ssl_own_key = ssl_own_key;
             c.ssl_own_key_pass = ssl_own_key_pass;
             c.ssl_verify = ParseSslVerify(ssl_verify);
             c.ssl_verify_identity = ssl_verify_identity;
             c.io_threads = io_threads;
             c.connections_per_host = connections_per_host;
             c.consistency = consistency;
             c.connect_timeout_ms = connect_timeout_ms;
             c.request_timeout_ms = request_timeout_ms;
             c.driver_path = driver_path;
             FetchOptions f;
             f.out_of_order = ooo;
             f.max_in_flight = max_requests_in_flight;
             f.retry_budget_ms = retry_budget_ms;
             f.max_retries = max_retries;
             f.retry_backoff_ms = retry_backoff_ms;
             f.request_timeout_ms = request_timeout_ms;
             return std::make_unique<PyReader>(
                 c, MakeTableSpec(table, id_col, data_col, label_col, label_type), f);
           }),
           py::arg("table"), py::arg("cassandra_ips") = std::vector<std::string>{"127.0.0.1"},
           py::arg("cassandra_port") = 9042, py::arg("id_col") = "id",
           py::arg("data_col") = "data", py::arg("label_col") = "label",
           py::arg("label_type") = "int", py::arg("username") = "", py::arg("password") = "",
           py::arg("password_file") = "", py::arg("password_env") = "",
           py::arg("use_ssl") = false, py::arg("ssl_certificate") = "",
           py::arg("ssl_own_certificate") = "", py::arg("ssl_own_key") = "",
           py::arg("ssl_own_key_pass") = "", py::arg("ssl_verify") = "full",
           py::arg("ssl_verify_identity") = true, py::arg("io_threads") = 2,
           py::arg("connections_per_host") = 2, py::arg("consistency") = "LOCAL_ONE",
           py::arg("connect_timeout_ms") = 5000, py::arg("request_timeout_ms") = 12000,
           py::arg("retry_budget_ms") = 60000, py::arg("max_retries") = -1,
           py::arg("retry_backoff_ms") = 100,
           py::arg("max_requests_in_flight") = 1024, py::arg("ooo") = false,
           py::arg("driver_path") = "")
      .def("read", &PyReader::Read, py::arg("uuids"),
           "Reads the rows of `uuids`; returns (data: list of uint8 arrays, labels: int32 array "
           "| list of uint8 arrays | None, ids: the UUIDs in output order).");
}
