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
      {"hedge_reads", true,
       "Hedged reads: a read still unanswered after a delay learned from recent latencies (their "
       "p99.5, between 3 and 16 medians, 4 ms to 2 s) goes once more to another replica and the "
       "first answer is used, so one slow or frozen node does not stall a batch. Only where a "
       "second try has another node to go to, one node down included (three nodes or more "
       "and RF 2 or more in the data center read from); 0-0.2% more reads on a healthy cluster "
       "here.",
       false, ArgScope::kReader},
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
       false, ArgScope::kOperators},
      {"driver_path", S(),
       "Path of the DataStax driver library (libcassandra.so.2); empty: $CASSANDRA_DALI_DRIVER, "
       "the system's, then the acsylla wheel's."},
      // The reference project's arguments that have no effect here: accepted so its scripts run.
      {"cloud_config", S(), "Not supported; must be empty.", false, ArgScope::kOperators},
      {"comm_threads", 2, "Accepted for compatibility; ignored.", false, ArgScope::kOperators},
      {"copy_threads", 2,
       "Accepted for compatibility (copies run in the driver's callbacks); ignored.", false,
       ArgScope::kOperators},
      {"wait_threads", 2, "Accepted for compatibility; ignored.", false, ArgScope::kOperators},
      {"slow_start", 0, "Accepted for compatibility; ignored.", false, ArgScope::kOperators},
      {"prefetch_buffers", 2,
       "Batches read ahead at least (fn.crs4.cassandra; fn.crs4.cassandra_interactive accepts "
       "and ignores it). The depth grows from there while pipe.run() has to wait for data (a "
       "long round trip, a slow server) and shrinks back when it does not, up to "
       "max_prefetch_buffers and within prefetch_bytes.",
       false, ArgScope::kOperators},
      // fn.crs4.cassandra's own: the list it walks, its shard, the order and the read-ahead.
      {"source_uuids", Strings{}, "UUIDs of the samples, as strings.", false,
       ArgScope::kSelfFeed},
      {"source_uuids_file", S(),
       "Rows file from the UUID cache tool: text, one UUID per line; or binary (cassandra-dali "
       "data uuids --binary), read where it lies: any length, no memory per rank.",
       false, ArgScope::kSelfFeed},
      {"shard_id", 0, "This reader's shard.", false, ArgScope::kSelfFeed},
      {"num_shards", 1, "Number of shards (ranks).", false, ArgScope::kSelfFeed},
      {"shuffle_every_epoch", true, "Draw a new permutation every epoch.", false,
       ArgScope::kSelfFeed},
      {"shuffle_seed", int64_t{1234},
       "Seed of the per-epoch permutation; must be the same on every rank.", false,
       ArgScope::kSelfFeed},
      {"loop_forever", true,
       "Run epochs back to back; if false, pipe.run() raises StopIteration at the end of each "
       "epoch.",
       false, ArgScope::kSelfFeed},
      {"on_bad_sample", S("error"),
       "A sample that cannot be delivered (no row even at a quorum, a null value, a CRC32C "
       "mismatch): 'error' raises, naming the UUID; 'replace' delivers the next sample of the "
       "list that reads well in its place (the same on every rank and after any resume), logs "
       "it once and appends it to quarantine_file. A sample the decoder rejects is outside the "
       "reader: see cassandra-dali data verify --decode.",
       false, ArgScope::kSelfFeed},
      {"quarantine_file", S(),
       "JSON-lines file the bad samples replaced are appended to (one line each, whole lines "
       "across ranks); empty: ~/.cache/cassandra-dali/quarantine/KEYSPACE.TABLE.jsonl. "
       "cassandra-dali data exclude writes a rows file without them.",
       false, ArgScope::kSelfFeed},
      {"max_prefetch_buffers", 64,
       "Cap on the batches read ahead; equal to prefetch_buffers: a fixed depth. Left out, it "
       "is at least prefetch_buffers.",
       false, ArgScope::kSelfFeed},
      {"prefetch_bytes", int64_t{256} << 20,
       "Cap on the bytes of the batches read ahead (the depth then follows the batch size, at "
       "least one batch); 0: no byte cap.",
       false, ArgScope::kSelfFeed},
  };
  return kArguments;
}

const char *ArgScopeName(ArgScope scope) {
  switch (scope) {
    case ArgScope::kReader: return "reader";
    case ArgScope::kOperators: return "operators";
    case ArgScope::kSelfFeed: return "self_feed";
  }
  return "?";
}

const ArgumentDecl &DeclaredArgument(const char *name) {
  const auto &decls = ReaderArguments();
  auto it = std::find_if(decls.begin(), decls.end(),
                         [&](const ArgumentDecl &d) { return std::string(d.name) == name; });
  if (it == decls.end()) throw std::logic_error(std::string("undeclared argument ") + name);
  return *it;
}

namespace {

// Typed access to the arguments passed, defaults filled in from the declaration.
class Arguments {
 public:
  explicit Arguments(const ArgumentSource &value) : value_(value) {}
  ArgValue Get(const char *name) const {
    const ArgumentDecl &decl = DeclaredArgument(name);
    auto given = value_(decl);
    return given ? *given : decl.default_value;
  }
  bool Given(const char *name) const { return value_(DeclaredArgument(name)).has_value(); }
  std::string Str(const char *name) const { return std::get<std::string>(Get(name)); }
  int Int(const char *name) const { return std::get<int>(Get(name)); }
  int64_t Int64(const char *name) const { return std::get<int64_t>(Get(name)); }
  bool Flag(const char *name) const { return std::get<bool>(Get(name)); }
  std::vector<std::string> Strs(const char *name) const {
    return std::get<std::vector<std::string>>(Get(name));
  }

 private:
  const ArgumentSource &value_;
};

}  // namespace

ReaderSettings SettingsFromArguments(const ArgumentSource &value) {
  const Arguments args(value);
  auto str = [&](const char *name) { return args.Str(name); };
  auto num = [&](const char *name) { return args.Int(name); };
  auto flag = [&](const char *name) { return args.Flag(name); };

  if (!str("cloud_config").empty()) {
    throw ArgumentError("cloud_config (Astra secure bundles) is not supported: pass "
                        "cassandra_ips, cassandra_port and the ssl_* arguments instead");
  }
  ReaderSettings s;
  s.table = MakeTableSpec(str("table"), str("id_col"), str("data_col"), str("label_col"),
                          str("label_type"), str("checksum_col"));
  auto &c = s.connection;
  c.contact_points = args.Strs("cassandra_ips");
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
  c.hedge_reads = flag("hedge_reads");
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
  // Refused when the pipeline is built, not at its first read.
  c.Validate();
  f.Validate();
  return s;
}

SelfFeedSettings SelfFeedSettingsFromArguments(const ArgumentSource &value) {
  const Arguments args(value);
  SelfFeedSettings s;
  s.source_uuids = args.Strs("source_uuids");
  s.rows_file = args.Str("source_uuids_file");
  if (!s.source_uuids.empty() && !s.rows_file.empty()) {
    throw ArgumentError("give either source_uuids or source_uuids_file, not both");
  }
  s.shard_id = args.Int("shard_id");
  s.num_shards = args.Int("num_shards");
  s.shuffle_every_epoch = args.Flag("shuffle_every_epoch");
  // Every rank must draw the same permutation, so it never comes from DALI's per-op `seed`:
  // that one derives from the pipeline's seed, which training scripts commonly set per rank
  // (DALI's ImageNet example uses 12 + local_rank), and is random when unset.
  s.shuffle_seed = static_cast<uint64_t>(args.Int64("shuffle_seed"));
  s.loop_forever = args.Flag("loop_forever");
  s.prefetch.min_batches = args.Int("prefetch_buffers");
  // Left out, the cap makes room for a larger prefetch_buffers given alone.
  s.prefetch.max_batches = args.Given("max_prefetch_buffers")
                               ? args.Int("max_prefetch_buffers")
                               : std::max(args.Int("max_prefetch_buffers"),
                                          s.prefetch.min_batches);
  s.prefetch.max_bytes = args.Int64("prefetch_bytes");
  s.prefetch.Validate();
  s.on_bad_sample = ParseBadSamplePolicy(args.Str("on_bad_sample"));
  s.quarantine_file = args.Str("quarantine_file");
  return s;
}

ReaderSettings DefaultReaderSettings(const std::string &table) {
  return SettingsFromArguments([&](const ArgumentDecl &decl) -> std::optional<ArgValue> {
    if (decl.required) return ArgValue(table);
    return std::nullopt;
  });
}

}  // namespace cassandra_dali
