#include "engine/session.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "engine/errors.h"

namespace cassandra_dali {
namespace {

constexpr uint64_t kMicrosPerMilli = 1000;

std::string ReadPemFile(const std::string &path, const std::string &what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConnectionError(what + ": cannot read PEM file '" + Printable(path, 4096) + "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

constexpr std::pair<const char *, CassConsistency> kConsistencyNames[] = {
    {"ANY", CASS_CONSISTENCY_ANY},
    {"ONE", CASS_CONSISTENCY_ONE},
    {"TWO", CASS_CONSISTENCY_TWO},
    {"THREE", CASS_CONSISTENCY_THREE},
    {"QUORUM", CASS_CONSISTENCY_QUORUM},
    {"ALL", CASS_CONSISTENCY_ALL},
    {"LOCAL_QUORUM", CASS_CONSISTENCY_LOCAL_QUORUM},
    {"EACH_QUORUM", CASS_CONSISTENCY_EACH_QUORUM},
    {"LOCAL_ONE", CASS_CONSISTENCY_LOCAL_ONE},
};

CassConsistency ParseConsistency(const std::string &text) {
  std::string up = text;
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return std::toupper(c); });
  for (const auto &[name, value] : kConsistencyNames) {
    if (up == name) return value;
  }
  throw ArgumentError("consistency '" + Printable(text) +
                      "' is not one of ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM, "
                      "LOCAL_ONE, ANY");
}

// Below a quorum, the replica read may be one that missed the row's write (down during the
// ingest, hints not yet replayed): a row missing there is read again at a quorum, which some
// replica that took the write is part of. LOCAL_ONE stays in the local data center.
CassConsistency RecheckConsistency(CassConsistency level) {
  switch (level) {
    case CASS_CONSISTENCY_LOCAL_ONE: return CASS_CONSISTENCY_LOCAL_QUORUM;
    case CASS_CONSISTENCY_ANY:
    case CASS_CONSISTENCY_ONE:
    case CASS_CONSISTENCY_TWO:
    case CASS_CONSISTENCY_THREE: return CASS_CONSISTENCY_QUORUM;
    default: return level;  // a quorum or more already: an empty answer is the answer
  }
}

std::string Quote(const std::string &canonical) { return "\"" + canonical + "\""; }

const char *TypeName(CassValueType type) {
  switch (type) {
    case CASS_VALUE_TYPE_BLOB: return "blob";
    case CASS_VALUE_TYPE_INT: return "int";
    case CASS_VALUE_TYPE_BIGINT: return "bigint";
    case CASS_VALUE_TYPE_UUID: return "uuid";
    case CASS_VALUE_TYPE_TIMEUUID: return "timeuuid";
    case CASS_VALUE_TYPE_TEXT:
    case CASS_VALUE_TYPE_VARCHAR: return "text";
    default: return "another type";
  }
}

bool Contains(const std::string &haystack, const char *needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

const char *ConsistencyName(CassConsistency level) {
  for (const auto &[name, value] : kConsistencyNames) {
    if (level == value) return name;
  }
  return "?";
}

std::string ResolvePassword(const ConnectionOptions &options) {
  const int given = !options.password.empty() + !options.password_file.empty() +
                    !options.password_env.empty();
  if (given > 1) {
    throw ArgumentError("give at most one of password, password_file and password_env");
  }
  if (!options.password_file.empty()) {
    std::ifstream in(options.password_file);
    if (!in) {
      throw ArgumentError("password_file '" + Printable(options.password_file, 4096) +
                          "' cannot be read");
    }
    std::string line;
    std::getline(in, line);  // an empty file: an empty password, as the Python tools read it
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  if (!options.password_env.empty()) {
    const char *value = std::getenv(options.password_env.c_str());
    if (!value) {
      throw ArgumentError("password_env: the environment variable " + options.password_env +
                          " is not set");
    }
    return value;
  }
  return options.password;
}

SslVerify ParseSslVerify(const std::string &text) {
  if (text == "full") return SslVerify::kFull;
  if (text == "cert") return SslVerify::kCert;
  if (text == "none") return SslVerify::kNone;
  throw ArgumentError("ssl_verify '" + Printable(text) +
                      "' is not one of 'full' (the certificate and the "
                      "host's address), 'cert' (the certificate only), 'none' (insecure)");
}

const char *SslVerifyName(SslVerify verify) {
  switch (verify) {
    case SslVerify::kFull: return "full";
    case SslVerify::kCert: return "cert";
    case SslVerify::kNone: return "none";
  }
  return "?";
}

SslVerify EffectiveSslVerify(const ConnectionOptions &options) {
  // The reference project's ssl_verify_identity=False keeps the certificate check only.
  if (options.ssl_verify == SslVerify::kFull && !options.ssl_verify_identity) {
    return SslVerify::kCert;
  }
  return options.ssl_verify;
}

std::string SystemTrustBundle() {
  std::vector<std::string> candidates;
  if (const char *env = std::getenv("SSL_CERT_FILE"); env && *env) candidates.push_back(env);
  for (const char *path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                           "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/cacert.pem",
                           "/etc/ssl/cert.pem"}) {
    candidates.push_back(path);
  }
  for (const auto &path : candidates) {
    std::ifstream in(path);
    if (in) return path;
  }
  return "";
}

std::vector<std::string> SplitPemCertificates(const std::string &text) {
  static const std::string kBegin = "-----BEGIN CERTIFICATE-----";
  static const std::string kEnd = "-----END CERTIFICATE-----";
  std::vector<std::string> out;
  for (size_t at = text.find(kBegin); at != std::string::npos; at = text.find(kBegin, at)) {
    const size_t end = text.find(kEnd, at);
    if (end == std::string::npos) break;
    out.push_back(text.substr(at, end + kEnd.size() - at) + "\n");
    at = end + kEnd.size();
  }
  return out;
}

LabelType ParseLabelType(const std::string &text) {
  if (text == "int") return LabelType::kInt;
  if (text == "blob" || text == "image") return LabelType::kBlob;
  if (text == "none") return LabelType::kNone;
  throw ArgumentError("label_type '" + Printable(text) +
                      "' is not one of 'int', 'blob' ('image'), 'none'");
}

std::string ConnectionOptions::Endpoint() const {
  std::string hosts;
  for (const auto &h : contact_points) hosts += (hosts.empty() ? "" : ",") + h;
  return hosts + ":" + std::to_string(port);
}

std::string CanonicalIdentifier(const std::string &name, const std::string &what) {
  auto bad = [&](const std::string &why) {
    return ArgumentError(what + " '" + Printable(name) + "' is not a valid CQL identifier: " + why);
  };
  if (name.empty()) throw bad("it is empty");
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
    std::string inner = name.substr(1, name.size() - 2);
    if (inner.empty() || inner.find('"') != std::string::npos) {
      throw bad("quoted names must be non-empty and contain no double quote");
    }
    for (unsigned char c : inner) {
      if (c < 0x20) throw bad("it contains a control character");
    }
    return inner;
  }
  if (!std::isalpha(static_cast<unsigned char>(name[0]))) throw bad("it must start with a letter");
  std::string out;
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '_') throw bad("only letters, digits and '_' are allowed");
    out.push_back(static_cast<char>(std::tolower(c)));
  }
  if (out.size() > 48) throw bad("it is longer than 48 characters");
  return out;
}

TableSpec MakeTableSpec(const std::string &table, const std::string &id_col,
                        const std::string &data_col, const std::string &label_col,
                        const std::string &label_type, const std::string &checksum_col) {
  TableSpec spec;
  auto dot = table.find('.');
  if (table.empty() || dot == std::string::npos) {
    throw ArgumentError("table '" + Printable(table) + "' must be given as 'keyspace.table'");
  }
  spec.keyspace = CanonicalIdentifier(table.substr(0, dot), "keyspace of table");
  spec.table = CanonicalIdentifier(table.substr(dot + 1), "table");
  spec.id_col = CanonicalIdentifier(id_col, "id_col");
  spec.data_col = CanonicalIdentifier(data_col, "data_col");
  spec.label_type = ParseLabelType(label_type);
  if (spec.label_type != LabelType::kNone) {
    spec.label_col = CanonicalIdentifier(label_col, "label_col");
  }
  if (!checksum_col.empty()) spec.checksum_col = CanonicalIdentifier(checksum_col, "checksum_col");
  return spec;
}

std::string FutureErrorMessage(const DriverApi &api, CassFuture *future) {
  const char *message = nullptr;
  size_t length = 0;
  api.cass_future_error_message(future, &message, &length);
  return message ? std::string(message, length) : std::string();
}

Session::Session(const ConnectionOptions &options, const TableSpec &table)
    : api_(LoadDriver(options.driver_path)),
      options_(options),
      table_(table),
      consistency_(ParseConsistency(options.consistency)),
      recheck_consistency_(RecheckConsistency(consistency_)) {
  if (options_.contact_points.empty()) throw ArgumentError("cassandra_ips is empty");
  if (options_.port <= 0 || options_.port > 65535) {
    throw ArgumentError("cassandra_port " + std::to_string(options_.port) + " is out of range");
  }
  if (options_.io_threads < 1) throw ArgumentError("io_threads must be >= 1");
  Connect();
  CheckSchema();
  LoadRing();
  Prepare();
}

Session::~Session() {
  if (!session_) return;
  CassFuturePtr closing(api_.cass_session_close(session_.get()));
  api_.cass_future_wait_timed(closing.get(), 10'000 * kMicrosPerMilli);
}

void Session::Connect() {
  cluster_.reset(api_.cass_cluster_new());
  std::string hosts;
  for (const auto &h : options_.contact_points) hosts += (hosts.empty() ? "" : ",") + h;
  if (api_.cass_cluster_set_contact_points(cluster_.get(), hosts.c_str()) != CASS_OK) {
    throw ArgumentError("cassandra_ips '" + hosts + "' are not valid contact points");
  }
  api_.cass_cluster_set_port(cluster_.get(), options_.port);
  api_.cass_cluster_set_num_threads_io(cluster_.get(), options_.io_threads);
  api_.cass_cluster_set_core_connections_per_host(cluster_.get(),
                                                  std::max(1, options_.connections_per_host));
  // Deep enough for every prefetched request; the engine caps requests in flight below it.
  api_.cass_cluster_set_queue_size_io(cluster_.get(), 16384);
  api_.cass_cluster_set_connect_timeout(cluster_.get(), options_.connect_timeout_ms);
  api_.cass_cluster_set_request_timeout(cluster_.get(), options_.request_timeout_ms);
  api_.cass_cluster_set_constant_reconnect(cluster_.get(), 500);
  if (!options_.local_datacenter.empty()) {
    // Remote data centers never serve reads: a LOCAL_* level then means this data center. The
    // driver refuses only an empty name here; one no node has fails the connect (below).
    const auto &dc = options_.local_datacenter;
    api_.cass_cluster_set_load_balance_dc_aware_n(cluster_.get(), dc.data(), dc.size(), 0,
                                                  cass_false);
  }
  // Wraps the DC-aware policy: each read goes first to a replica of its row.
  api_.cass_cluster_set_token_aware_routing(cluster_.get(), cass_true);
  // Unshuffled: each of the driver's I/O threads reads a row from one replica (a fixed position
  // in its replica list, drawn per thread), so at most io_threads nodes' page caches hold it
  // rather than all RF. Drivers before 2.10 lack the switch, and the ring's functions too.
  if (api_.cass_cluster_set_token_aware_routing_shuffle_replicas) {
    api_.cass_cluster_set_token_aware_routing_shuffle_replicas(cluster_.get(), cass_false);
  }
  // Off: the driver's prepare-on-up handler calls into the session after a node comes back,
  // and a session closed meanwhile dies there ("pure virtual method called" in
  // Cluster::notify_host_up_after_prepare: seen closing readers while a node restarted). A
  // restarted node answers the first read "unprepared" and the driver prepares it then.
  if (api_.cass_cluster_set_prepare_on_up_or_add_host) {
    api_.cass_cluster_set_prepare_on_up_or_add_host(cluster_.get(), cass_false);
  }
  api_.cass_cluster_set_consistency(cluster_.get(), consistency_);
  if (!options_.username.empty()) {
    const std::string password = ResolvePassword(options_);
    api_.cass_cluster_set_credentials(cluster_.get(), options_.username.c_str(),
                                      password.c_str());
  }
  if (options_.use_ssl) {
    ssl_.reset(api_.cass_ssl_new());
    const SslVerify verify = EffectiveSslVerify(options_);
    if (verify != SslVerify::kNone) TrustCertificates();
    api_.cass_ssl_set_verify_flags(
        ssl_.get(), verify == SslVerify::kFull
                        ? CASS_SSL_VERIFY_PEER_CERT | CASS_SSL_VERIFY_PEER_IDENTITY
                        : verify == SslVerify::kCert ? CASS_SSL_VERIFY_PEER_CERT
                                                     : CASS_SSL_VERIFY_NONE);
    if (!options_.ssl_own_certificate.empty()) {
      std::string pem = ReadPemFile(options_.ssl_own_certificate, "ssl_own_certificate");
      if (api_.cass_ssl_set_cert_n(ssl_.get(), pem.data(), pem.size()) != CASS_OK) {
        throw ConnectionError("ssl_own_certificate '" +
                              Printable(options_.ssl_own_certificate, 4096) +
                              "' is not a valid PEM certificate");
      }
    }
    if (!options_.ssl_own_key.empty()) {
      std::string pem = ReadPemFile(options_.ssl_own_key, "ssl_own_key");
      if (api_.cass_ssl_set_private_key_n(ssl_.get(), pem.data(), pem.size(),
                                          options_.ssl_own_key_pass.data(),
                                          options_.ssl_own_key_pass.size()) != CASS_OK) {
        throw ConnectionError("ssl_own_key '" + Printable(options_.ssl_own_key, 4096) +
                              "' is not a valid PEM private key (or ssl_own_key_pass is wrong)");
      }
    }
    api_.cass_cluster_set_ssl(cluster_.get(), ssl_.get());
  }

  session_.reset(api_.cass_session_new());
  CassFuturePtr connecting(api_.cass_session_connect(session_.get(), cluster_.get()));
  // The driver gives up after the connect timeout per host; leave it room to say why.
  const uint64_t bound_ms = 2ull * options_.connect_timeout_ms + 5000;
  // A data center no node is in fails as "no hosts available": the message names the one asked.
  const std::string datacenter =
      options_.local_datacenter.empty()
          ? ""
          : ", local_datacenter='" + Printable(options_.local_datacenter) + "'";
  if (!api_.cass_future_wait_timed(connecting.get(), bound_ms * kMicrosPerMilli)) {
    throw ConnectionError("connecting to Cassandra at " + options_.Endpoint() + datacenter +
                          " did not finish within " + std::to_string(bound_ms) + " ms");
  }
  CassError rc = api_.cass_future_error_code(connecting.get());
  if (rc == CASS_OK) return;
  std::string message = FutureErrorMessage(api_, connecting.get());
  std::string where = " at " + options_.Endpoint();
  if (rc == CASS_ERROR_SERVER_BAD_CREDENTIALS || Contains(message, "redentials") ||
      Contains(message, "uthenticat")) {
    throw ConnectionError("authentication failed" + where + " for user '" + options_.username +
                          "': " + message);
  }
  if ((rc >> 24) == CASS_ERROR_SOURCE_SSL || Contains(message, "SSL") ||
      Contains(message, "certificate")) {
    throw ConnectionError("TLS connection" + where + " failed: " + message + " (" +
                          trust_description_ + "; ssl_verify='" +
                          SslVerifyName(EffectiveSslVerify(options_)) +
                          "'). Check that the server's certificate is signed by a trusted CA "
                          "and names the address connected to");
  }
  throw ConnectionError("cannot connect to Cassandra" + where + " (connect timeout " +
                        std::to_string(options_.connect_timeout_ms) + " ms" + datacenter +
                        "): " + message);
}

void Session::TrustCertificates() {
  std::string path = options_.ssl_certificate;
  if (path.empty()) {
    path = SystemTrustBundle();
    if (path.empty()) {
      throw ConnectionError(
          "use_ssl=True needs CA certificates to verify the server at " + options_.Endpoint() +
          ": no ssl_certificate was given and no system trust store was found ($SSL_CERT_FILE, "
          "/etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt, ...). Give the "
          "CA's PEM file as ssl_certificate (ssl_verify='none' turns verification off: "
          "insecure)");
    }
    trust_description_ = "trusting the system store '" + Printable(path, 4096) + "'";
  } else {
    trust_description_ = "trusting ssl_certificate '" + Printable(path, 4096) + "'";
  }
  const std::string what =
      options_.ssl_certificate.empty() ? "system trust store" : "ssl_certificate";
  const auto certificates = SplitPemCertificates(ReadPemFile(path, what));
  int added = 0;
  for (const auto &pem : certificates) {
    if (api_.cass_ssl_add_trusted_cert_n(ssl_.get(), pem.data(), pem.size()) == CASS_OK) ++added;
  }
  if (added == 0) {
    throw ConnectionError(what + " '" + Printable(path, 4096) + "' holds no valid PEM certificate");
  }
}

void Session::CheckSchema() {
  CassSchemaMetaPtr schema(api_.cass_session_get_schema_meta(session_.get()));
  const std::string qualified = table_.QualifiedName();
  const CassKeyspaceMeta *keyspace = api_.cass_schema_meta_keyspace_by_name_n(
      schema.get(), table_.keyspace.data(), table_.keyspace.size());
  if (!keyspace) {
    throw SchemaError("keyspace '" + table_.keyspace + "' does not exist at " +
                      options_.Endpoint() + " (table '" + qualified + "')");
  }
  const CassTableMeta *table =
      api_.cass_keyspace_meta_table_by_name_n(keyspace, table_.table.data(), table_.table.size());
  if (!table) throw SchemaError("table '" + qualified + "' does not exist");

  auto check = [&](const std::string &column, const std::string &role,
                   std::initializer_list<CassValueType> allowed) {
    const CassColumnMeta *meta =
        api_.cass_table_meta_column_by_name_n(table, column.data(), column.size());
    if (!meta) {
      throw SchemaError(role + " column '" + column + "' does not exist in table '" + qualified +
                        "'");
    }
    CassValueType type = api_.cass_data_type_type(api_.cass_column_meta_data_type(meta));
    for (auto ok : allowed) {
      if (type == ok) return;
    }
    std::string expected;
    for (auto ok : allowed) expected += (expected.empty() ? "" : " or ") + std::string(TypeName(ok));
    throw SchemaError(role + " column '" + column + "' of table '" + qualified + "' is " +
                      TypeName(type) + ", expected " + expected);
  };
  check(table_.id_col, "id_col", {CASS_VALUE_TYPE_UUID, CASS_VALUE_TYPE_TIMEUUID});
  check(table_.data_col, "data_col", {CASS_VALUE_TYPE_BLOB});
  if (table_.label_type == LabelType::kInt) {
    check(table_.label_col, "label_col (label_type int)", {CASS_VALUE_TYPE_INT});
  } else if (table_.label_type == LabelType::kBlob) {
    check(table_.label_col, "label_col (label_type blob)", {CASS_VALUE_TYPE_BLOB});
  }
  if (!table_.checksum_col.empty()) {
    check(table_.checksum_col, "checksum_col (CRC32C)", {CASS_VALUE_TYPE_INT});
  }
}

void Session::LoadRing() {
  ring_ = LoadTokenRing(api_, session_.get(), table_.keyspace, options_.request_timeout_ms);
  if (!ring_.error().empty()) {
    // Not an error for the reader: only the per-host counts and the replicas in errors go.
    std::fprintf(stderr,
                 "cassandra-dali: the token ring of %s is not fully known (%s): %s\n",
                 options_.Endpoint().c_str(), Printable(ring_.error(), 400).c_str(),
                 ring_.empty() ? "reads are not counted by host, read errors name no replicas"
                               : "read errors name no replicas");
  }
}

void Session::Prepare() {
  std::string columns = Quote(table_.data_col);
  if (table_.label_type != LabelType::kNone) columns += ", " + Quote(table_.label_col);
  if (!table_.checksum_col.empty()) columns += ", " + Quote(table_.checksum_col);
  const std::string query = "SELECT " + columns + " FROM " + Quote(table_.keyspace) + "." +
                            Quote(table_.table) + " WHERE " + Quote(table_.id_col) + " = ?";
  CassFuturePtr preparing(api_.cass_session_prepare(session_.get(), query.c_str()));
  const uint64_t bound_ms = 2ull * options_.request_timeout_ms + 5000;
  if (!api_.cass_future_wait_timed(preparing.get(), bound_ms * kMicrosPerMilli)) {
    throw ConnectionError("preparing '" + query + "' at " + options_.Endpoint() +
                          " did not finish within " + std::to_string(bound_ms) + " ms");
  }
  if (api_.cass_future_error_code(preparing.get()) != CASS_OK) {
    throw SchemaError("cannot prepare '" + query + "': " +
                      FutureErrorMessage(api_, preparing.get()));
  }
  prepared_.reset(api_.cass_future_get_prepared(preparing.get()));
}

CassFuturePtr Session::StartRead(const CassUuid &id, bool recheck) const {
  CassStatementPtr statement(api_.cass_prepared_bind(prepared_.get()));
  api_.cass_statement_bind_uuid(statement.get(), 0, id);
  if (recheck) api_.cass_statement_set_consistency(statement.get(), recheck_consistency_);
  // Reads are idempotent, so the driver's retry policy and speculative execution may re-run them.
  api_.cass_statement_set_is_idempotent(statement.get(), cass_true);
  return CassFuturePtr(api_.cass_session_execute(session_.get(), statement.get()));
}

}  // namespace cassandra_dali
