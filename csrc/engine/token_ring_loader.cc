// Loads a cluster's token ring and a keyspace's replication through a reader's own session,
// pinned to one node, each query bounded: what TokenRing computes replicas from.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "engine/errors.h"
#include "engine/handles.h"
#include "engine/session.h"
#include "engine/token_ring.h"

namespace cassandra_dali {
namespace {

constexpr uint64_t kMicrosPerMilli = 1000;

}  // namespace

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
