#include "engine/session.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine/errors.h"
#include "engine/hedging.h"

namespace cassandra_dali {
namespace {

constexpr uint64_t kMicrosPerMilli = 1000;

std::string ReadPemFile(const std::string &path, const std::string &what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConnectionError(what + ": cannot read PEM file '" + Printable(path, 4096) + "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
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

}  // namespace

ConnectFailure ClassifyConnectFailure(CassError rc, const std::string &message) {
  // A connect that fails on every host ends as "no hosts available"; the driver then writes the
  // last host's own error code into the message as "(0x%08X)". The codes, not their wording,
  // decide.
  std::vector<CassError> codes{rc};
  for (size_t at = message.find("(0x"); at != std::string::npos;
       at = message.find("(0x", at + 1)) {
    const size_t end = message.find(')', at);
    if (end == std::string::npos || end - at != 11) continue;
    char *stop = nullptr;
    const unsigned long code = std::strtoul(message.c_str() + at + 3, &stop, 16);
    if (stop == message.c_str() + end) codes.push_back(static_cast<CassError>(code));
  }
  for (CassError code : codes) {
    if (code == CASS_ERROR_SERVER_BAD_CREDENTIALS) return ConnectFailure::kCredentials;
    if ((static_cast<unsigned>(code) >> 24) == CASS_ERROR_SOURCE_SSL) return ConnectFailure::kTls;
  }
  return ConnectFailure::kOther;
}

std::string FutureErrorMessage(const DriverApi &api, CassFuture *future) {
  const char *message = nullptr;
  size_t length = 0;
  api.cass_future_error_message(future, &message, &length);
  return message ? std::string(message, length) : std::string();
}

Session::Session(const ConnectionOptions &options, const TableSpec &table)
    : api_((options.Validate(), LoadDriver(options.driver_path))),
      options_(options),
      table_(table),
      consistency_(ParseConsistency(options.consistency)),
      recheck_consistency_(RecheckConsistency(consistency_)) {
  Connect();
  CheckSchema();
  LoadRing();
  DecideHedging();
  Prepare();
}

Session::Session(const ConnectionOptions &options, const TableSpec &table, Unconnected)
    : api_((options.Validate(), Driver())),
      options_(options),
      table_(table),
      consistency_(ParseConsistency(options.consistency)),
      recheck_consistency_(RecheckConsistency(consistency_)) {}

namespace {
thread_local int t_driver_callbacks = 0;
}  // namespace

DriverCallbackScope::DriverCallbackScope() { ++t_driver_callbacks; }
DriverCallbackScope::~DriverCallbackScope() { --t_driver_callbacks; }
bool DriverCallbackScope::Active() { return t_driver_callbacks > 0; }

Session::~Session() {
  if (!session_) return;
  auto close = [&api = api_](CassSessionPtr session) {
    CassFuturePtr closing(api.cass_session_close(session.get()));
    api.cass_future_wait_timed(closing.get(), 10'000 * kMicrosPerMilli);
  };
  if (!DriverCallbackScope::Active()) {
    close(std::move(session_));
    return;
  }
  // On a driver I/O thread: the close would wait for this very thread. The cluster and
  // prepared statement go with the session (the driver frees the session before them).
  std::thread([close, session = std::move(session_), prepared = std::move(prepared_),
               cluster = std::move(cluster_), ssl = std::move(ssl_)]() mutable {
    close(std::move(session));
  }).detach();
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
  api_.cass_cluster_set_queue_size_io(cluster_.get(), kDriverQueueSize);
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
  RegisterHedgeProfiles();
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
  switch (ClassifyConnectFailure(rc, message)) {
    case ConnectFailure::kCredentials:
      throw ConnectionError("authentication failed" + where + " for user '" + options_.username +
                            "': " + message);
    case ConnectFailure::kTls:
      throw ConnectionError("TLS connection" + where + " failed: " + message + " (" +
                            trust_description_ + "; ssl_verify='" +
                            SslVerifyName(EffectiveSslVerify(options_)) +
                            "'). Check that the server's certificate is signed by a trusted CA "
                            "and names the address connected to");
    case ConnectFailure::kOther:
      break;
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
    for (auto ok : allowed) {
      expected += (expected.empty() ? "" : " or ") + std::string(TypeName(ok));
    }
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

void Session::RegisterHedgeProfiles() {
  if (!options_.hedge_reads) return;
  if (const std::string missing = api_.MissingHedgeFunctions(); !missing.empty()) {
    static std::once_flag said;
    std::call_once(said, [&] {
      std::fprintf(stderr,
                   "cassandra-dali: reads are not hedged: the Cassandra driver lacks %s "
                   "(DataStax C/C++ driver 2.10 or newer has them)\n",
                   missing.c_str());
    });
    return;
  }
  // A profile sets its speculative execution, and the cluster's request timeout and consistency
  // again: a profile's own are not inherited by every build of the driver (the ScyllaDB fork's
  // profiles came with the driver's 12 s default, whatever request_timeout_ms said). Routing is
  // the cluster's (token-aware). One hedge at most: a second one would only add load where two
  // replicas are already slow.
  for (size_t step = 0; step < HedgeLadderMs().size(); ++step) {
    CassExecProfile *profile = api_.cass_execution_profile_new();
    api_.cass_execution_profile_set_constant_speculative_execution_policy(
        profile, HedgeLadderMs()[step], 1);
    api_.cass_execution_profile_set_request_timeout(
        profile, static_cast<uint64_t>(options_.request_timeout_ms));
    api_.cass_execution_profile_set_consistency(profile, consistency_);
    const CassError rc = api_.cass_cluster_set_execution_profile(
        cluster_.get(), HedgeProfileName(static_cast<int>(step)).c_str(), profile);
    api_.cass_execution_profile_free(profile);  // the cluster keeps a copy
    if (rc != CASS_OK) {
      std::fprintf(stderr, "cassandra-dali: reads are not hedged: the driver refused an "
                           "execution profile (%s)\n", api_.cass_error_desc(rc));
      return;
    }
  }
  hedge_profiles_ = true;
}

void Session::DecideHedging() {
  if (!hedge_profiles_) return;
  // The driver ends a request's timeout when its second try finds no node to go to (its
  // RequestHandler::set_error stops the request's timer for a speculative execution that found
  // no host): hedged only where the ring shows one node down would still leave it a node.
  hedging_ = !ring_.empty() && RingLeavesHedgesANode(ring_.host_data_centers(),
                                                     ring_.replication(),
                                                     options_.local_datacenter);
}

std::optional<int64_t> Session::hedges_aborted() const {
  if (!hedging_ || !session_) return std::nullopt;  // (profiles unused: nothing to report)
  CassSpeculativeExecutionMetrics metrics{};
  api_.cass_session_get_speculative_execution_metrics(session_.get(), &metrics);
  return static_cast<int64_t>(metrics.count);
}

CassFuturePtr Session::StartRead(const CassUuid &id, bool recheck, int hedge_step) const {
  CassStatementPtr statement(api_.cass_prepared_bind(prepared_.get()));
  api_.cass_statement_bind_uuid(statement.get(), 0, id);
  if (recheck) api_.cass_statement_set_consistency(statement.get(), recheck_consistency_);
  if (hedging_ && hedge_step >= 0) {
    api_.cass_statement_set_execution_profile(statement.get(),
                                              HedgeProfileName(hedge_step).c_str());
  }
  // Reads are idempotent, so the driver's retry policy and speculative execution may re-run them.
  api_.cass_statement_set_is_idempotent(statement.get(), cass_true);
  return CassFuturePtr(api_.cass_session_execute(session_.get(), statement.get()));
}

}  // namespace cassandra_dali
