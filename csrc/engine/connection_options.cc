#include "engine/connection_options.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "engine/errors.h"

namespace cassandra_dali {
namespace {

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

void RequirePositive(int value, const char *name, const char *why) {
  if (value < 1) {
    throw ArgumentError(std::string(name) + "=" + std::to_string(value) + " must be >= 1" + why);
  }
}

}  // namespace

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

const char *ConsistencyName(CassConsistency level) {
  for (const auto &[name, value] : kConsistencyNames) {
    if (level == value) return name;
  }
  return "?";
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

std::string ConnectionOptions::Endpoint() const {
  std::string hosts;
  for (const auto &h : contact_points) hosts += (hosts.empty() ? "" : ",") + h;
  return hosts + ":" + std::to_string(port);
}

void ConnectionOptions::Validate() const {
  if (contact_points.empty()) throw ArgumentError("cassandra_ips is empty");
  if (port <= 0 || port > 65535) {
    throw ArgumentError("cassandra_port " + std::to_string(port) + " is out of range");
  }
  RequirePositive(io_threads, "io_threads", "");
  RequirePositive(connections_per_host, "connections_per_host", "");
  RequirePositive(connect_timeout_ms, "connect_timeout_ms",
                  " (0 would be the driver's 'no timeout': a host that never answers would "
                  "hold the connect forever)");
  RequirePositive(request_timeout_ms, "request_timeout_ms",
                  " (0 would be the driver's 'no timeout': a stalled node would hold a read, "
                  "and the reader's shutdown, forever)");
  ParseConsistency(consistency);
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
  for (const char *path :
       {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/cacert.pem", "/etc/ssl/cert.pem"}) {
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

}  // namespace cassandra_dali
