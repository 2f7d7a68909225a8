#include "engine/reader_arguments.h"

#include <algorithm>

#include "engine/errors.h"

namespace cassandra_dali {

const std::vector<ArgumentDecl> &ReaderArguments() {
  using Strings = std::vector<std::string>;
  using S = std::string;
  static const std::vector<ArgumentDecl> kArguments = {
      {"table", S(), "Data table, as 'keyspace.table'.", true},
      {"cassandra_ips", Strings{"127.0.0.1"}, "Contact points (host names or addresses)."},
      {"cassandra_port", 9042, "Native protocol (CQL) port."},
      {"id_col", S("id"), "UUID primary key column."},
      {"data_col", S("data"), "Blob column with the sample bytes."},
      {"label_col", S("label"), "Label column."},
      {"label_type", S("int"),
       "'int' (int column, output int32 [1]), 'blob' (blob column, output uint8 bytes; 'image' "
       "is accepted as an alias) or 'none' (output empty int32 [0])."},
      {"checksum_col", S(),
       "Int column holding each sample's CRC32C (the ingest's --checksum writes it): every "
       "sample read is checked against it and a mismatch raises, naming the UUID. Empty: no "
       "check."},
      {"username", S(), "User for PasswordAuthenticator."},
      {"password", S(),
       "Password for PasswordAuthenticator, in clear: a serialized pipeline holds it. Prefer "
       "password_file or password_env."},
      {"password_file", S(), "File whose first line is the password (keep it owner-only)."},
      {"password_env", S(),
       "Name of the environment variable holding the password, e.g. CASSANDRA_PASSWORD."},
      {"use_ssl", false, "Connect over TLS."},
      {"ssl_certificate", S(),
       "PEM file of the CA(s) to trust; empty: the system's trust store ($SSL_CERT_FILE or the "
       "distribution's CA bundle)."},
      {"ssl_own_certificate", S(), "PEM client certificate (mutual TLS)."},
      {"ssl_own_key", S(), "PEM client private key (mutual TLS)."},
      {"ssl_own_key_pass", S(), "Password of ssl_own_key."},
      {"ssl_verify", S("full"),
       "How TLS checks the server: 'full' (its certificate against the trusted CAs and its "
       "address against the certificate), 'cert' (the certificate only), 'none' (no check: "
       "anyone can pose as the server; the reference project's behaviour without "
       "ssl_certificate)."},
      {"ssl_verify_identity", true,
       "False checks the certificate but not the server's address (as ssl_verify='cert'); kept "
       "for the reference project's scripts."},
      {"io_threads", 2, "Driver I/O threads."},
      {"connections_per_host", 2, "Connections per host and I/O thread."},
      {"consistency", S("LOCAL_ONE"), "Read consistency level."},
      {"local_datacenter", S(),
       "Data center to read from (DC-aware routing: other data centers' nodes are never "
       "used). Empty: the data center of the first contact point the driver reaches."},
      {"connect_timeout_ms", 5000, "Connection timeout per host, in ms."},
      {"request_timeout_ms", 12000, "Timeout of one read, in ms."},
      {"retry_budget_ms", 60000,
       "How long a batch keeps retrying reads that timed out, found replicas unavailable or "
       "overloaded, or lost their server (a restart): long enough to ride through a node "
       "restart. Past it, reading raises; resume from the last checkpoint."},
      {"max_retries", -1, "Optional cap on retry rounds per batch; -1: only retry_budget_ms."},
      {"retry_backoff_ms", 100, "First retry delay; doubled each round up to 2 s, with jitter."},
      {"max_requests_in_flight", 16384,
       "Cap on reads in flight per reader; the rest wait in a queue. The prefetch depth and "
       "its byte budget are what normally bound them."},
      {"ooo", false,
       "Out of order: fill each batch in arrival order (labels stay with their data); the "
       "order within a batch is then not reproducible."},
      {"telemetry_name", S(),
       "Name the reader's counters are listed under (cassandra_dali.telemetry); empty: the "
       "table. cassandra_dali.sources sets it to the operator's name= (which DALI does not "
       "pass to the operator).",
       false, false},
      {"driver_path", S(),
       "Path of the DataStax driver library (libcassandra.so.2); empty: $CASSANDRA_DALI_DRIVER, "
       "the system's, then the acsylla wheel's."},
      // The reference project's arguments that have no effect here: accepted so its scripts run.
      {"cloud_config", S(), "Not supported; must be empty.", false, false},
      {"comm_threads", 2, "Accepted for compatibility; ignored.", false, false},
      {"copy_threads", 2,
       "Accepted for compatibility (copies run in the driver's callbacks); ignored.", false,
       false},
      {"wait_threads", 2, "Accepted for compatibility; ignored.", false, false},
      {"slow_start", 0, "Accepted for compatibility; ignored.", false, false},
  };
  return kArguments;
}

ReaderSettings SettingsFromArguments(
    const std::function<ArgValue(const ArgumentDecl &)> &value) {
  const auto &decls = ReaderArguments();
  auto get = [&](const char *name) {
    auto it = std::find_if(decls.begin(), decls.end(),
                           [&](const ArgumentDecl &d) { return std::string(d.name) == name; });
    if (it == decls.end()) throw std::logic_error(std::string("undeclared argument ") + name);
    return value(*it);
  };
  auto str = [&](const char *name) { return std::get<std::string>(get(name)); };
  auto num = [&](const char *name) { return std::get<int>(get(name)); };
  auto flag = [&](const char *name) { return std::get<bool>(get(name)); };

  if (!str("cloud_config").empty()) {
    throw ArgumentError("cloud_config (Astra secure bundles) is not supported: pass "
                        "cassandra_ips, cassandra_port and the ssl_* arguments instead");
  }
  ReaderSettings s;
  s.table = MakeTableSpec(str("table"), str("id_col"), str("data_col"), str("label_col"),
                          str("label_type"), str("checksum_col"));
  auto &c = s.connection;
  c.contact_points = std::get<std::vector<std::string>>(get("cassandra_ips"));
  c.port = num("cassandra_port");
  c.username = str("username");
  c.password = str("password");
  c.password_file = str("password_file");
  c.password_env = str("password_env");
  c.use_ssl = flag("use_ssl");
  c.ssl_certificate = str("ssl_certificate");
  c.ssl_own_certificate = str("ssl_own_certificate");
  c.ssl_own_key = str("ssl_own_key");
  c.ssl_own_key_pass = str("ssl_own_key_pass");
  c.ssl_verify = ParseSslVerify(str("ssl_verify"));
  c.ssl_verify_identity = flag("ssl_verify_identity");
  c.io_threads = num("io_threads");
  c.connections_per_host = num("connections_per_host");
  c.consistency = str("consistency");
  c.local_datacenter = str("local_datacenter");
  c.connect_timeout_ms = num("connect_timeout_ms");
  c.request_timeout_ms = num("request_timeout_ms");
  c.driver_path = str("driver_path");
  // Conflicting sources, a missing file or variable: said now, with or without a username.
  if (!c.password.empty() || !c.password_file.empty() || !c.password_env.empty()) {
    ResolvePassword(c);
  }
  auto &f = s.fetch;
  f.out_of_order = flag("ooo");
  f.max_in_flight = num("max_requests_in_flight");
  f.telemetry_name = str("telemetry_name");
  f.retry_budget_ms = num("retry_budget_ms");
  f.max_retries = num("max_retries");
  f.retry_backoff_ms = num("retry_backoff_ms");
  return s;
}

}  // namespace cassandra_dali
