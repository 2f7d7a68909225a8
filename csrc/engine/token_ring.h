// The cluster's token ring as the reader sees it when it connects: which node holds which row.
// The C API does not say which node coordinated a read (cass_future_coordinator's CassNode has
// no accessor), so the reader loads the ring itself, once per session: every node's tokens,
// address and data center (system.local, system.peers) and the keyspace's replication. It
// serves the per-host read counts of the telemetry and read errors that name a row's replicas.
// Topology changes after the session connected are not followed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "driver/driver_loader.h"
#include "engine/uuid.h"

namespace cassandra_dali {

// Cassandra's Murmur3Partitioner token of a partition key's serialized bytes: the first half of
// MurmurHash3_x64_128 (seed 0) as Cassandra computes it (tail bytes sign-extended, unlike the
// reference), Long.MIN_VALUE mapped to Long.MAX_VALUE and the empty key to Long.MIN_VALUE, as
// Murmur3Partitioner.getToken does.
int64_t Murmur3Token(const uint8_t *data, size_t size);
// A UUID partition key is serialized as its 16 bytes in network order.
inline int64_t UuidToken(const UuidBytes &uuid) { return Murmur3Token(uuid.data(), uuid.size()); }

// How a keyspace places its replicas (system_schema.keyspaces.replication).
struct Replication {
  enum class Strategy { kUnknown, kSimple, kNetworkTopology, kLocal };
  Strategy strategy = Strategy::kUnknown;
  std::string class_name;            // as the server names it, package prefix dropped
  int replication_factor = 0;        // SimpleStrategy
  std::map<std::string, int> by_dc;  // NetworkTopologyStrategy: data center -> replicas

  // From the replication map ({'class': ..., 'replication_factor': '3'} or {..., 'dc1': '3'}).
  // Transient replicas ("3/1") are left out: only full replicas are counted.
  static Replication FromOptions(const std::map<std::string, std::string> &options);
  std::string Factor() const;    // "RF 3", "RF dc1:3, dc2:1", "LocalStrategy", "unknown ..."
  std::string Describe() const;  // "SimpleStrategy RF 3"
};

struct RingNode {
  std::string address;      // the address clients reach it at (rpc_address), as text
  std::string data_center;
  std::vector<int64_t> tokens;
};

class TokenRing {
 public:
  TokenRing() = default;  // empty: nothing known (error() says why)
  // Nodes without tokens are left out; a token claimed twice keeps its first owner.
  TokenRing(std::vector<RingNode> nodes, Replication replication);

  bool empty() const { return tokens_.empty(); }
  // The nodes, ordered by address (numerically where it parses as IPv4/IPv6): host indexes
  // below index this.
  const std::vector<std::string> &hosts() const { return hosts_; }
  const Replication &replication() const { return replication_; }
  // Each host's data center, by host index.
  const std::vector<std::string> &host_data_centers() const { return host_dcs_; }
  size_t token_count() const { return tokens_.size(); }

  // The node owning the token's range: the first whose token is >= it, wrapping; -1 if empty.
  int PrimaryHost(int64_t token) const;
  // The hosts holding the token's rows, in ring order from it (the primary replica first).
  // SimpleStrategy: the first RF distinct hosts clockwise. NetworkTopologyStrategy: per data
  // center, its first RF_dc distinct hosts clockwise. Racks are ignored: with several racks in a
  // data center Cassandra prefers replicas on distinct racks, which this does not model.
  // Empty for LocalStrategy (user tables cannot use it) and unknown strategies.
  const std::vector<int> &Replicas(int64_t token) const;
  // The node that holds the row first: Replicas' first, else (replication unknown) PrimaryHost.
  int PrimaryReplica(int64_t token) const;

  // "3 hosts, 48 tokens, SimpleStrategy RF 1", or "not loaded: <why>".
  std::string Describe() const;
  // Why the ring (or its replication) is not known; "" when loaded whole.
  const std::string &error() const { return error_; }
  void set_error(std::string why) { error_ = std::move(why); }

 private:
  size_t Position(int64_t token) const;  // index into tokens_ of the owning range
  void ComputeReplicas();

  std::vector<std::string> hosts_;
  std::vector<std::string> host_dcs_;        // per host
  std::vector<int64_t> tokens_;              // sorted
  std::vector<int> owners_;                  // host index per tokens_ entry
  std::vector<std::vector<int>> replicas_;   // per ring position
  Replication replication_;
  std::string error_;
};

// Reads the ring through a connected session: system.local first, then system.peers and the
// keyspace's replication from the node that answered it (one node's view, consistent). Every
// wait is bounded by the request timeout. Never throws: on failure the ring is empty, or has
// unknown replication when only that could not be read, and error() says why (also when the
// driver lacks one of CASS_DALI_RING_FUNCTIONS: it is named).
TokenRing LoadTokenRing(const DriverApi &api, CassSession *session, const std::string &keyspace,
                        int request_timeout_ms);

}  // namespace cassandra_dali
