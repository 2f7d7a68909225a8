// How a reader connects: contact points, credentials, TLS, the driver's threads and timeouts,
// the read consistency. Parsed and checked here; the Session applies them.
#pragma once

#include <string>
#include <vector>

#include "driver/cassandra_api.h"

namespace cassandra_dali {

// The driver's request queue per I/O thread (cass_cluster_set_queue_size_io): the reader never
// has more reads in flight than this, so the driver never answers "request queue full".
constexpr int kDriverQueueSize = 16384;

// How a TLS connection checks the server: its certificate against the trusted CAs and its
// address against the certificate (full, the default), the certificate only, or nothing.
enum class SslVerify { kFull, kCert, kNone };
SslVerify ParseSslVerify(const std::string &text);  // "full", "cert", "none"
const char *SslVerifyName(SslVerify verify);

// "LOCAL_ONE", "QUORUM", ... as CQL names a consistency level.
CassConsistency ParseConsistency(const std::string &text);
const char *ConsistencyName(CassConsistency level);

// The quorum level a row missing at `level` is read again at: LOCAL_QUORUM for LOCAL_ONE,
// QUORUM for ANY, ONE, TWO, THREE; `level` itself (no re-read) for a quorum or more.
CassConsistency RecheckConsistency(CassConsistency level);

// Every field is set from the reader's argument declaration (reader_arguments.h), which holds
// the defaults.
struct ConnectionOptions {
  std::vector<std::string> contact_points;
  int port = 0;
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
  int io_threads = 0;
  int connections_per_host = 0;
  std::string consistency;
  std::string local_datacenter;  // empty: the driver takes the first contact point's
  int connect_timeout_ms = 0;
  int request_timeout_ms = 0;
  std::string driver_path;  // explicit driver library, empty = search
  bool hedge_reads = false;  // a second try to another replica after the learned delay

  std::string Endpoint() const;  // "host1,host2:port", for messages

  // Throws ArgumentError naming the first argument out of range (a timeout of 0 would be the
  // driver's "no timeout": a stalled node would then hold a read forever).
  void Validate() const;
};

// The password from whichever of password, password_file, password_env is given (one at most).
std::string ResolvePassword(const ConnectionOptions &options);

// The verification in force: ssl_verify, downgraded to kCert by ssl_verify_identity=false.
SslVerify EffectiveSslVerify(const ConnectionOptions &options);

// The system's CA bundle ($SSL_CERT_FILE, then the usual distribution paths); "" if none.
std::string SystemTrustBundle();

// The certificates of a PEM file, one PEM text each (the driver trusts one at a time).
std::vector<std::string> SplitPemCertificates(const std::string &text);

}  // namespace cassandra_dali
