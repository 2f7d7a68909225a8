// One driver session per reader: connection, schema checks and the prepared read.
#pragma once

#include <string>
#include <vector>

#include "engine/handles.h"
#include "engine/token_ring.h"

namespace cassandra_dali {

enum class LabelType { kInt, kBlob, kNone };

// How a TLS connection checks the server: its certificate against the trusted CAs and its
// address against the certificate (full, the default), the certificate only, or nothing.
enum class SslVerify { kFull, kCert, kNone };
SslVerify ParseSslVerify(const std::string &text);  // "full", "cert", "none"
const char *SslVerifyName(SslVerify verify);

// "int", "blob" (alias "image", the reference project's older name) or "none".
LabelType ParseLabelType(const std::string &text);

// "LOCAL_ONE", "QUORUM", ... as CQL names a consistency level.
const char *ConsistencyName(CassConsistency level);

struct ConnectionOptions {
  std::vector<std::string> contact_points{"127.0.0.1"};
  int port = 9042;
  std::string username;
  std::string password;       // in clear: what a serialized pipeline would hold; prefer...
  std::string password_file;  // ...a file holding it (its first line), or...
  std::string password_env;   // ...the name of an environment variable holding it
  bool use_ssl = false;
  std::string ssl_certificate;      // PEM file of the CA (or server cert) to trust
  std::string ssl_own_certificate;  // PEM client certificate, for mutual TLS
  std::string ssl_own_key;          // PEM client key
  std::string ssl_own_key_pass;
  SslVerify ssl_verify = SslVerify::kFull;
  bool ssl_verify_identity = true;  // false (the reference's default): kFull checks as kCert
  int io_threads = 2;
  int connections_per_host = 2;
  std::string consistency = "LOCAL_ONE";
  std::string local_datacenter;  // empty: the driver takes the first contact point's
  int connect_timeout_ms = 5000;
  int request_timeout_ms = 12000;
  std::string driver_path;  // explicit driver library, empty = search

  std::string Endpoint() const;  // "host1,host2:port", for messages
};

// The password from whichever of password, password_file, password_env is given (one at most).
std::string ResolvePassword(const ConnectionOptions &options);

// The verification in force: ssl_verify, downgraded to kCert by ssl_verify_identity=false.
SslVerify EffectiveSslVerify(const ConnectionOptions &options);

// The system's CA bundle ($SSL_CERT_FILE, then the usual distribution paths); "" if none.
std::string SystemTrustBundle();

// The certificates of a PEM file, one PEM text each (the driver trusts one at a time).
std::vector<std::string> SplitPemCertificates(const std::string &text);

struct TableSpec {
  std::string keyspace;
  std::string table;
  std::string id_col = "id";
  std::string data_col = "data";
  std::string label_col = "label";
  LabelType label_type = LabelType::kInt;
  std::string checksum_col;  // int column holding each sample's CRC32C; empty: not verified

  std::string QualifiedName() const { return keyspace + "." + table; }
};

// Builds a TableSpec from the operator's arguments; `table` is "keyspace.table". Names must be
// CQL identifiers (unquoted: letters, digits, underscores; or double-quoted): anything else is
// refused, so arguments can never inject CQL.
TableSpec MakeTableSpec(const std::string &table, const std::string &id_col,
                        const std::string &data_col, const std::string &label_col,
                        const std::string &label_type, const std::string &checksum_col = "");

// Validates one identifier and returns its canonical form: unquoted names are case-insensitive
// (lower-cased), quoted ones keep their case. `what` names the argument in errors.
std::string CanonicalIdentifier(const std::string &name, const std::string &what);

class Session {
 public:
  // Connects (bounded by the connect timeout), checks that the table and columns exist with
  // the right types, and prepares the read. Throws ConnectionError or SchemaError.
  Session(const ConnectionOptions &options, const TableSpec &table);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Starts an asynchronous read of one row; the caller owns the returned future. `recheck`:
  // at recheck_consistency(), for a row the first read did not find.
  CassFuturePtr StartRead(const CassUuid &id, bool recheck = false) const;

  // The configured read consistency, and the quorum level a row missing at it is read again
  // at: LOCAL_QUORUM for LOCAL_ONE, QUORUM for ONE, TWO, THREE; the same level (no re-read)
  // for a quorum or more.
  CassConsistency consistency() const { return consistency_; }
  CassConsistency recheck_consistency() const { return recheck_consistency_; }
  bool rechecks_missing_rows() const { return recheck_consistency_ != consistency_; }

  const ConnectionOptions &options() const { return options_; }
  const TableSpec &table() const { return table_; }
  const DriverApi &api() const { return api_; }
  // The cluster's token ring as loaded at connect time; empty (with error()) if it could not be.
  const TokenRing &ring() const { return ring_; }

 private:
  void Connect();
  void TrustCertificates();  // ssl_certificate, else the system store
  void CheckSchema();
  void LoadRing();  // never fails: the reader works without it
  void Prepare();

  const DriverApi &api_;
  ConnectionOptions options_;
  TableSpec table_;
  CassConsistency consistency_;
  CassConsistency recheck_consistency_;
  CassSslPtr ssl_;
  CassClusterPtr cluster_;
  CassSessionPtr session_;
  CassPreparedPtr prepared_;
  TokenRing ring_;
  std::string trust_description_ = "no CA trusted";  // for TLS errors
};

// The driver's message for a failed future ("" when it succeeded).
std::string FutureErrorMessage(const DriverApi &api, CassFuture *future);

}  // namespace cassandra_dali
