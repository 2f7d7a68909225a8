#include "engine/token_ring.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <tuple>

#include "engine/errors.h"
#include "engine/handles.h"
#include "engine/session.h"

namespace cassandra_dali {
namespace {

constexpr uint64_t kMicrosPerMilli = 1000;

uint64_t Rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t Fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

uint64_t LittleEndian64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Cassandra reads tail bytes as Java bytes, (long) key.get(i): sign-extended.
uint64_t SignExtended(uint8_t byte) {
  return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(byte)));
}

}  // namespace

int64_t Murmur3Token(const uint8_t *data, size_t size) {
  if (size == 0) return std::numeric_limits<int64_t>::min();  // Murmur3Partitioner.MINIMUM
  constexpr uint64_t c1 = 0x87c37b91114253d5ULL;
  constexpr uint64_t c2 = 0x4cf5ad432745937fULL;
  uint64_t h1 = 0, h2 = 0;  // seed 0
  const size_t blocks = size / 16;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k1 = LittleEndian64(data + 16 * i);
    uint64_t k2 = LittleEndian64(data + 16 * i + 8);
    k1 *= c1;
    k1 = Rotl64(k1, 31);
    k1 *= c2;
    h1 ^= k1;
    h1 = Rotl64(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;
    k2 *= c2;
    k2 = Rotl64(k2, 33);
    k2 *= c1;
    h2 ^= k2;
    h2 = Rotl64(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;
  }
  const uint8_t *tail = data + 16 * blocks;
  const size_t rest = size & 15;
  uint64_t k1 = 0, k2 = 0;
  for (size_t i = rest; i > 8; --i) k2 ^= SignExtended(tail[i - 1]) << (8 * (i - 9));
  if (rest > 8) {
    k2 *= c2;
    k2 = Rotl64(k2, 33);
    k2 *= c1;
    h2 ^= k2;
  }
  for (size_t i = std::min<size_t>(rest, 8); i > 0; --i) {
    k1 ^= SignExtended(tail[i - 1]) << (8 * (i - 1));
  }
  if (rest > 0) {
    k1 *= c1;
    k1 = Rotl64(k1, 31);
    k1 *= c2;
    h1 ^= k1;
  }
  h1 ^= size;
  h2 ^= size;
  h1 += h2;
  h2 += h1;
  h1 = Fmix64(h1);
  h2 = Fmix64(h2);
  h1 += h2;
  const auto token = static_cast<int64_t>(h1);
  // Long.MIN_VALUE is the ring's minimum, owned by no key: Cassandra maps it to MAX_VALUE.
  return token == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max()
                                                      : token;
}

namespace {

// "3", or "3/1" (3 replicas, 1 transient): the full replicas; -1 if it does not parse.
int FullReplicas(const std::string &text) {
  char *end = nullptr;
  const long all = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || all < 0 || all > 1000) return -1;
  if (*end == '\0') return static_cast<int>(all);
  if (*end != '/') return -1;
  const char *transient_text = end + 1;
  const long transient = std::strtol(transient_text, &end, 10);
  if (end == transient_text || *end != '\0' || transient < 0 || transient > all) return -1;
  return static_cast<int>(all - transient);
}

}  // namespace

Replication Replication::FromOptions(const std::map<std::string, std::string> &options) {
  Replication out;
  auto found = options.find("class");
  if (found == options.end()) return out;
  const std::string &full = found->second;
  out.class_name = full.substr(full.rfind('.') == std::string::npos ? 0 : full.rfind('.') + 1);
  if (out.class_name == "SimpleStrategy") {
    auto rf = options.find("replication_factor");
    const int n = rf == options.end() ? -1 : FullReplicas(rf->second);
    if (n >= 0) {
      out.strategy = Strategy::kSimple;
      out.replication_factor = n;
    }
  } else if (out.class_name == "NetworkTopologyStrategy") {
    out.strategy = Strategy::kNetworkTopology;
    for (const auto &[key, value] : options) {
      if (key == "class" || key == "replication_factor") continue;  // the latter: expanded
      const int n = FullReplicas(value);
      if (n < 0) return Replication{Strategy::kUnknown, out.class_name, 0, {}};
      out.by_dc[key] = n;
    }
  } else if (out.class_name == "LocalStrategy") {
    out.strategy = Strategy::kLocal;
  }
  return out;
}

std::string Replication::Factor() const {
  switch (strategy) {
    case Strategy::kSimple: return "RF " + std::to_string(replication_factor);
    case Strategy::kNetworkTopology: {
      std::string text;
      for (const auto &[dc, n] : by_dc) {
        text += (text.empty() ? "RF " : ", ") + dc + ":" + std::to_string(n);
      }
      return text.empty() ? "RF 0" : text;
    }
    case Strategy::kLocal: return "LocalStrategy";
    case Strategy::kUnknown: break;
  }
  return class_name.empty() ? "replication unknown"
                            : "replication " + class_name + " not understood";
}

std::string Replication::Describe() const {
  switch (strategy) {
    case Strategy::kSimple:
    case Strategy::kNetworkTopology: return class_name + " " + Factor();
    default: return Factor();
  }
}

namespace {

// Orders addresses numerically (127.0.0.2 before 127.0.0.10), IPv4 before IPv6, anything that
// does not parse after both, as text.
struct AddressKey {
  int family;
  std::array<uint8_t, 16> bytes{};
  std::string text;
  explicit AddressKey(const std::string &address) : family(2), text(address) {
    if (inet_pton(AF_INET, address.c_str(), bytes.data()) == 1) {
      family = 0;
    } else if (inet_pton(AF_INET6, address.c_str(), bytes.data()) == 1) {
      family = 1;
    }
  }
  bool operator<(const AddressKey &other) const {
    return std::tie(family, bytes, text) < std::tie(other.family, other.bytes, other.text);
  }
};

}  // namespace

TokenRing::TokenRing(std::vector<RingNode> nodes, Replication replication)
    : replication_(std::move(replication)) {
  std::erase_if(nodes, [](const RingNode &n) { return n.tokens.empty(); });
  std::stable_sort(nodes.begin(), nodes.end(), [](const RingNode &a, const RingNode &b) {
    return AddressKey(a.address) < AddressKey(b.address);
  });
  std::vector<std::pair<int64_t, int>> ring;
  for (const auto &node : nodes) {
    // The same address twice (an unusual server's views): one host, its tokens merged.
    if (hosts_.empty() || hosts_.back() != node.address) {
      hosts_.push_back(node.address);
      host_dcs_.push_back(node.data_center);
    }
    const int host = static_cast<int>(hosts_.size()) - 1;
    for (int64_t token : node.tokens) ring.emplace_back(token, host);
  }
  std::stable_sort(ring.begin(), ring.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  ring.erase(std::unique(ring.begin(), ring.end(),
                         [](const auto &a, const auto &b) { return a.first == b.first; }),
             ring.end());
  for (const auto &[token, host] : ring) {
    tokens_.push_back(token);
    owners_.push_back(host);
  }
  ComputeReplicas();
}

void TokenRing::ComputeReplicas() {
  const size_t n = tokens_.size();
  replicas_.assign(n, {});
  if (n == 0) return;
  const int host_count = static_cast<int>(hosts_.size());
  if (replication_.strategy == Replication::Strategy::kSimple) {
    const int want = std::min(replication_.replication_factor, host_count);
    for (size_t i = 0; i < n; ++i) {
      auto &out = replicas_[i];
      for (size_t step = 0; step < n && static_cast<int>(out.size()) < want; ++step) {
        const int host = owners_[(i + step) % n];
        if (std::find(out.begin(), out.end(), host) == out.end()) out.push_back(host);
      }
    }
  } else if (replication_.strategy == Replication::Strategy::kNetworkTopology) {
    // Per data center: its ring positions, and how many hosts it has.
    std::map<std::string, std::vector<size_t>> positions;
    std::map<std::string, int> dc_hosts;
    for (size_t i = 0; i < n; ++i) positions[host_dcs_[owners_[i]]].push_back(i);
    for (const auto &dc : host_dcs_) ++dc_hosts[dc];
    for (size_t i = 0; i < n; ++i) {
      std::vector<std::pair<size_t, int>> found;  // (clockwise distance from i, host)
      for (const auto &[dc, want_rf] : replication_.by_dc) {
        auto at = positions.find(dc);
        if (want_rf <= 0 || at == positions.end()) continue;
        const auto &mine = at->second;
        const int want = std::min(want_rf, dc_hosts[dc]);
        const size_t start = static_cast<size_t>(
            std::lower_bound(mine.begin(), mine.end(), i) - mine.begin());
        int got = 0;
        for (size_t step = 0; step < mine.size() && got < want; ++step) {
          const size_t position = mine[(start + step) % mine.size()];
          const int host = owners_[position];
          if (std::none_of(found.begin(), found.end(),
                           [&](const auto &f) { return f.second == host; })) {
            found.emplace_back((position + n - i) % n, host);
            ++got;
          }
        }
      }
      std::sort(found.begin(), found.end());
      for (const auto &f : found) replicas_[i].push_back(f.second);
    }
  }
  // kLocal, kUnknown: no replicas known.
}

size_t TokenRing::Position(int64_t token) const {
  const auto at = std::lower_bound(tokens_.begin(), tokens_.end(), token);
  return at == tokens_.end() ? 0 : static_cast<size_t>(at - tokens_.begin());
}

int TokenRing::PrimaryHost(int64_t token) const {
  return tokens_.empty() ? -1 : owners_[Position(token)];
}

const std::vector<int> &TokenRing::Replicas(int64_t token) const {
  static const std::vector<int> kNone;
  return tokens_.empty() ? kNone : replicas_[Position(token)];
}

int TokenRing::PrimaryReplica(int64_t token) const {
  if (tokens_.empty()) return -1;
  const size_t position = Position(token);
  return replicas_[position].empty() ? owners_[position] : replicas_[position].front();
}

std::string TokenRing::Describe() const {
  if (tokens_.empty()) return "not loaded: " + (error_.empty() ? "no tokens" : error_);
  auto count = [](size_t n, const char *what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  std::string text = count(hosts_.size(), "host") + ", " + count(tokens_.size(), "token") +
                     ", " + replication_.Describe();
  if (!error_.empty()) text += " (" + error_ + ")";
  return text;
}

namespace {

// One query of the loader: run (bounded), its result, or the reason it failed.
class RingQuery {
 public:
  RingQuery(const DriverApi &api, CassSession *session, const char *query, int timeout_ms,
            const CassNode *node, const std::string *bound_text = nullptr)
      : api_(api), query_(query), timeout_ms_(timeout_ms) {
    CassStatementPtr statement(api.cass_statement_new(query, bound_text ? 1 : 0));
    if (bound_text) {
      api.cass_statement_bind_string_n(statement.get(), 0, bound_text->data(),
                                       bound_text->size());
    }
    // System tables are node-local (LocalStrategy): any consistency above ONE is meaningless.
    api.cass_statement_set_consistency(statement.get(), CASS_CONSISTENCY_ONE);
    api.cass_statement_set_request_timeout(statement.get(), static_cast<uint64_t>(timeout_ms));
    if (node) pinned_ = api.cass_statement_set_node(statement.get(), node) == CASS_OK;
    future_.reset(api.cass_session_execute(session, statement.get()));
  }

  // The result, or nullptr with why() set.
  const CassResult *Result() {
    if (result_ || !why_.empty()) return result_.get();
    // The statement's own timeout ends the future; this bound is the backstop, as Prepare's.
    const uint64_t bound_ms = 2ull * timeout_ms_ + 5000;
    if (!api_.cass_future_wait_timed(future_.get(), bound_ms * kMicrosPerMilli)) {
      why_ = std::string(query_) + ": no answer within " + std::to_string(bound_ms) + " ms";
    } else if (api_.cass_future_error_code(future_.get()) != CASS_OK) {
      why_ = std::string(query_) + ": " + FutureErrorMessage(api_, future_.get());
    } else {
      result_.reset(api_.cass_future_get_result(future_.get()));
      if (!result_) why_ = std::string(query_) + ": no result";
    }
    return result_.get();
  }
  const std::string &why() const { return why_; }
  bool pinned() const { return pinned_; }
  CassFuture *future() const { return future_.get(); }

 private:
  const DriverApi &api_;
  const char *query_;
  int timeout_ms_;
  bool pinned_ = false;
  CassFuturePtr future_;
  CassResultPtr result_;
  std::string why_;
};

std::optional<std::string> Text(const DriverApi &api, const CassValue *value) {
  const char *text = nullptr;
  size_t size = 0;
  if (!value || api.cass_value_is_null(value) ||
      api.cass_value_get_string(value, &text, &size) != CASS_OK) {
    return std::nullopt;
  }
  return std::string(text, size);
}

// The address as text; nullopt when null or the any-address (0.0.0.0, ::).
std::optional<std::string> Address(const DriverApi &api, const CassValue *value) {
  CassInet inet{};
  if (!value || api.cass_value_is_null(value) ||
      api.cass_value_get_inet(value, &inet) != CASS_OK ||
      (inet.address_length != 4 && inet.address_length != 16)) {
    return std::nullopt;
  }
  if (std::all_of(inet.address, inet.address + inet.address_length,
                  [](uint8_t b) { return b == 0; })) {
    return std::nullopt;
  }
  char text[CASS_INET_STRING_LENGTH] = {};
  api.cass_inet_string(inet, text);
  return std::string(text);
}

// The tokens of a set<text> column; throws on a token that is not a 64-bit integer (another
// partitioner).
std::vector<int64_t> Tokens(const DriverApi &api, const CassValue *value) {
  std::vector<int64_t> out;
  if (!value || api.cass_value_is_null(value)) return out;
  CassIteratorPtr items(api.cass_iterator_from_collection(value));
  if (!items) throw std::runtime_error("tokens is not a collection");
  while (api.cass_iterator_next(items.get())) {
    auto text = Text(api, api.cass_iterator_get_value(items.get()));
    if (!text) throw std::runtime_error("a token is not text");
    errno = 0;
    char *end = nullptr;
    const long long token = std::strtoll(text->c_str(), &end, 10);
    if (text->empty() || *end != '\0' || errno == ERANGE) {
      throw std::runtime_error("token '" + Printable(*text) + "' is not a Murmur3 token");
    }
    out.push_back(token);
  }
  return out;
}

template <typename RowFn>
void ForEachRow(const DriverApi &api, const CassResult *result, RowFn &&fn) {
  CassIteratorPtr rows(api.cass_iterator_from_result(result));
  while (api.cass_iterator_next(rows.get())) fn(api.cass_iterator_get_row(rows.get()));
}

}  // namespace

TokenRing LoadTokenRing(const DriverApi &api, CassSession *session, const std::string &keyspace,
                        int request_timeout_ms) {
  TokenRing failed;
  if (const std::string missing = api.MissingRingFunctions(); !missing.empty()) {
    // An older driver (cass_future_coordinator and cass_statement_set_node came with 2.16):
    // the reader reads all the same.
    failed.set_error("the Cassandra driver lacks " + missing + " (DataStax C/C++ driver 2.16 or "
                     "newer has them)");
    return failed;
  }
  try {
    RingQuery local(api, session,
                    "SELECT rpc_address, broadcast_address, tokens, data_center, partitioner "
                    "FROM system.local",
                    request_timeout_ms, nullptr);
    const CassResult *local_rows = local.Result();
    if (!local_rows) {
      failed.set_error(local.why());
      return failed;
    }
    // The rest from the node that answered: its peers are every node but itself. (Two nodes'
    // answers would miss the second node and list the first twice.) The node belongs to the
    // local query's future, alive until this function returns.
    const CassNode *coordinator = api.cass_future_coordinator(local.future());
    RingQuery peers(api, session, "SELECT peer, rpc_address, tokens, data_center FROM system.peers",
                    request_timeout_ms, coordinator);
    RingQuery replication(api, session,
                          "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
                          request_timeout_ms, coordinator, &keyspace);

    std::vector<RingNode> nodes;
    ForEachRow(api, local_rows, [&](const CassRow *row) {
      // Before the tokens: another partitioner's tokens do not parse as Murmur3's.
      const std::string partitioner = Text(api, api.cass_row_get_column(row, 4)).value_or("");
      const std::string_view murmur3 = "Murmur3Partitioner";
      if (!partitioner.ends_with(murmur3)) {
        throw std::runtime_error("the cluster's partitioner is '" + Printable(partitioner) +
                                 "': only Murmur3Partitioner tokens are computed");
      }
      auto address = Address(api, api.cass_row_get_column(row, 0));
      if (!address) address = Address(api, api.cass_row_get_column(row, 1));
      if (!address) throw std::runtime_error("system.local gives no rpc or broadcast address");
      nodes.push_back({*address, Text(api, api.cass_row_get_column(row, 3)).value_or(""),
                       Tokens(api, api.cass_row_get_column(row, 2))});
    });
    if (nodes.size() != 1) {
      failed.set_error("system.local has " + std::to_string(nodes.size()) + " rows");
      return failed;
    }
    const std::string local_address = nodes.front().address;
    const CassResult *peer_rows = peers.Result();
    if (!peer_rows) {
      failed.set_error(peers.why());
      return failed;
    }
    ForEachRow(api, peer_rows, [&](const CassRow *row) {
      auto address = Address(api, api.cass_row_get_column(row, 1));
      if (!address) address = Address(api, api.cass_row_get_column(row, 0));
      if (!address) return;  // a peer without an address cannot be reached: not in our ring
      nodes.push_back({*address, Text(api, api.cass_row_get_column(row, 3)).value_or(""),
                       Tokens(api, api.cass_row_get_column(row, 2))});
    });
    // Unpinned (the driver gave no coordinator), the two answers may come from two nodes.
    for (size_t i = 1; i < nodes.size(); ++i) {
      if (nodes[i].address == local_address) {
        failed.set_error(std::string("system.local and system.peers were answered by different "
                                     "nodes (") +
                         (peers.pinned() ? "despite" : "the driver gave no node for") +
                         " cass_statement_set_node)");
        return failed;
      }
    }

    Replication placement;
    std::string replication_error;
    if (const CassResult *rows = replication.Result(); !rows) {
      replication_error = replication.why();
    } else if (api.cass_result_row_count(rows) == 0) {
      replication_error = "keyspace '" + keyspace + "' not in system_schema.keyspaces";
    } else {
      std::map<std::string, std::string> options;
      const CassValue *map = api.cass_row_get_column(api.cass_result_first_row(rows), 0);
      CassIteratorPtr entries(map ? api.cass_iterator_from_map(map) : nullptr);
      while (entries && api.cass_iterator_next(entries.get())) {
        auto key = Text(api, api.cass_iterator_get_map_key(entries.get()));
        auto value = Text(api, api.cass_iterator_get_map_value(entries.get()));
        if (key && value) options[*key] = *value;
      }
      placement = Replication::FromOptions(options);
    }
    TokenRing ring(std::move(nodes), std::move(placement));
    if (!replication_error.empty()) ring.set_error(replication_error);
    return ring;
  } catch (const std::exception &e) {
    failed.set_error(e.what());
  } catch (...) {
    failed.set_error("unknown error");
  }
  return failed;
}

}  // namespace cassandra_dali
