// One driver session per reader: connection, schema checks and the prepared read.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/connection_options.h"
#include "engine/handles.h"
#include "engine/table_spec.h"
#include "engine/token_ring.h"

namespace cassandra_dali {

// Marks the current thread as running a driver callback while in scope. A session's last
// owner may be a read's callback (the consumer gave up on it): closing the session waits for
// the driver's own threads, so from there it is closed on a thread of its own.
class DriverCallbackScope {
 public:
  DriverCallbackScope();
  ~DriverCallbackScope();
  static bool Active();
};

class Session {
 public:
  // Connects (bounded by the connect timeout), checks that the table and columns exist with
  // the right types, and prepares the read. Throws ConnectionError or SchemaError.
  Session(const ConnectionOptions &options, const TableSpec &table);
  // A session over the driver already loaded (a test's fake one), never connected: StartRead
  // binds no prepared statement and executes on a null session. For the engine's tests only.
  struct Unconnected {};
  Session(const ConnectionOptions &options, const TableSpec &table, Unconnected);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Starts an asynchronous read of one row; the caller owns the returned future. `recheck`:
  // at recheck_consistency(), for a row the first read did not find.
  // `hedge_step`: the hedge ladder's step (hedging.h) the read names, -1 for none.
  CassFuturePtr StartRead(const CassUuid &id, bool recheck = false, int hedge_step = -1) const;

  // Whether reads are hedged: asked for (hedge_reads), the driver has the functions, and the
  // ring leaves a second try another node to go to (DecideHedging).
  bool hedging() const { return hedging_; }
  // The driver's count of speculative executions that answered after another had (losers);
  // nullopt without hedging.
  std::optional<int64_t> hedges_aborted() const;

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
  void RegisterHedgeProfiles();  // before Connect: the driver copies profiles at connect
  // After LoadRing: whether a second try has another node to go to (HedgeTarget).
  void DecideHedging();

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
  bool hedge_profiles_ = false;  // registered with the cluster
  bool hedging_ = false;         // ...and used: the ring leaves a second try somewhere to go
  std::string trust_description_ = "no CA trusted";  // for TLS errors
};

// Why a connect failed, from the driver's error codes (the future's, and the per-host one the
// driver embeds in its "no hosts available" message), never from the wording.
enum class ConnectFailure { kCredentials, kTls, kOther };
ConnectFailure ClassifyConnectFailure(CassError rc, const std::string &message);

// The driver's message for a failed future ("" when it succeeded).
std::string FutureErrorMessage(const DriverApi &api, CassFuture *future);

}  // namespace cassandra_dali
