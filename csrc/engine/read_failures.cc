#include "engine/read_failures.h"

#include "engine/errors.h"

namespace cassandra_dali {
namespace {

// Errors saying that no replica served the row (down, or too slow to answer): the rows'
// replicas are worth naming.
bool MeansUnavailable(CassError rc) {
  switch (rc) {
    case CASS_ERROR_SERVER_UNAVAILABLE:
    case CASS_ERROR_LIB_NO_HOSTS_AVAILABLE:
    case CASS_ERROR_SERVER_READ_TIMEOUT:
    case CASS_ERROR_LIB_REQUEST_TIMED_OUT:
    case CASS_ERROR_LIB_WRITE_ERROR:
      return true;
    default:
      return false;
  }
}

// Why a row's replicas did not serve it, as a final error says it after naming them.
std::string UnservedBecause(CassError rc, int request_timeout_ms) {
  switch (rc) {
    case CASS_ERROR_LIB_REQUEST_TIMED_OUT:
      return "no replica answered within request_timeout_ms=" +
             std::to_string(request_timeout_ms) + " (down or overloaded)";
    case CASS_ERROR_SERVER_READ_TIMEOUT:
      // The coordinator answered; the replicas it asked did not, within the server's timeout.
      return "no replica answered the coordinator within the server's read timeout (down or "
             "overloaded)";
    default:  // unavailable, no host left, a connection closing under the read
      return "the data is unavailable while they are down";
  }
}

}  // namespace

FailureKind KindOfDriverError(CassError rc) {
  switch (rc) {
    case CASS_ERROR_LIB_REQUEST_TIMED_OUT:
    case CASS_ERROR_LIB_REQUEST_QUEUE_FULL:
    case CASS_ERROR_LIB_NO_HOSTS_AVAILABLE:
    case CASS_ERROR_SERVER_UNAVAILABLE:
    case CASS_ERROR_SERVER_OVERLOADED:
    case CASS_ERROR_SERVER_IS_BOOTSTRAPPING:
    case CASS_ERROR_SERVER_READ_TIMEOUT:
    // A write to a connection that has just closed (a node killed or restarting): the driver
    // fails the request at once rather than trying the next host (Connection::on_write).
    // Requests already written when a connection closes are retried by the driver itself on
    // the next host (idempotent), ending in CASS_ERROR_LIB_NO_HOSTS_AVAILABLE, above.
    case CASS_ERROR_LIB_WRITE_ERROR:
      return FailureKind::kTransient;
    default:
      return FailureKind::kFailed;
  }
}

void ThrowPermanentFailure(const ReadFailure &failure, size_t failed_reads) {
  const std::string more = failed_reads > 1
                               ? " (and " + std::to_string(failed_reads - 1) +
                                     " more failed reads in this batch)"
                               : "";
  if (failure.kind == FailureKind::kMissingRow) throw MissingRowError(failure.message + more);
  throw ReadError(failure.message + more);
}

std::string ReplicaNote(const TokenRing &ring, const std::vector<UuidBytes> &uuids,
                        const std::vector<ReadFailure> &failures, int request_timeout_ms) {
  if (ring.empty() || failures.empty() || !MeansUnavailable(failures.front().code)) return "";
  const auto &hosts = ring.hosts();
  auto names = [&](const std::vector<int> &indexes) {
    std::string text;
    for (int h : indexes) text += (text.empty() ? "" : ", ") + hosts[h];
    return text;
  };
  const int64_t token = UuidToken(uuids[failures.front().request]);
  const auto &replicas = ring.Replicas(token);
  std::string note =
      replicas.empty()
          ? "; the row's token range is owned by " + hosts[ring.PrimaryHost(token)] + " (" +
                ring.replication().Describe() + ")"
          : "; the row's replicas (" + ring.replication().Factor() + "): " + names(replicas) +
                ": " + UnservedBecause(failures.front().code, request_timeout_ms);
  if (failures.size() > 1 && hosts.size() > 1) {
    // Which nodes the failing rows live on: usually one node down explains them all.
    std::vector<int64_t> rows_by_host(hosts.size(), 0);
    int counted = 0;
    for (const auto &f : failures) {
      if (!MeansUnavailable(f.code)) continue;
      ++counted;
      const int host = ring.PrimaryReplica(UuidToken(uuids[f.request]));
      if (host >= 0) ++rows_by_host[host];
    }
    std::string tally;
    for (size_t h = 0; h < hosts.size(); ++h) {
      if (rows_by_host[h] == 0) continue;
      tally += (tally.empty() ? "" : ", ") + hosts[h] + " (" + std::to_string(rows_by_host[h]) +
               (rows_by_host[h] == 1 ? " row)" : " rows)");
    }
    note += "; the " + std::to_string(counted) +
            " rows of this batch no replica served, by primary replica: " + tally;
  }
  return note;
}

}  // namespace cassandra_dali
