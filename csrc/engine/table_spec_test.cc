// Identifier rules, argument validation and failure kinds: the pure parts of reading.
#include <string>

#include "engine/errors.h"
#include "engine/read_failures.h"
#include "engine/reader_arguments.h"
#include "engine/session.h"
#include "engine/table_spec.h"
#include "testing/check.h"

namespace cassandra_dali {
namespace {

// The message of the ArgumentError `fn` throws, or "" if it throws none.
template <typename Fn>
std::string Refusal(Fn &&fn) {
  return testing::ThrownMessage<ArgumentError>(fn);
}

bool Contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE(LongColumnNames, "identifiers: column names of any length, unquoted or quoted") {
  const std::string sixty(60, 'c');
  CHECK(CanonicalIdentifier("Data_" + sixty, "data_col") == "data_" + sixty);
  CHECK(CanonicalIdentifier("\"Mixed-Case " + sixty + "\"", "data_col") == "Mixed-Case " + sixty);
  auto spec = MakeTableSpec("ks.t", "id", sixty, "label", "int");
  CHECK(spec.data_col == sixty);
}

TEST_CASE(KeyspaceAndTableRule, "identifiers: keyspace and table names are \\w{1,48}, quoted too") {
  CHECK(CanonicalIdentifier("\"Data_2\"", "table", IdentifierKind::kKeyspaceOrTable) == "Data_2");
  CHECK(CanonicalIdentifier("\"2data\"", "table", IdentifierKind::kKeyspaceOrTable) == "2data");
  const std::string long_name(49, 't');
  auto too_long = Refusal([&] { MakeTableSpec("ks." + long_name, "id", "d", "l", "int"); });
  CHECK(Contains(too_long, "table '" + long_name + "'"));
  CHECK(Contains(too_long, "at most 48 characters"));
  auto quoted_long =
      Refusal([&] { MakeTableSpec("\"" + long_name + "\".t", "id", "d", "l", "int"); });
  CHECK(Contains(quoted_long, "keyspace of table"));
  CHECK(Contains(quoted_long, "quoted or not"));
  auto dash = Refusal([&] { MakeTableSpec("\"my-ks\".t", "id", "d", "l", "int"); });
  CHECK(Contains(dash, "only letters, digits and '_'"));
  CHECK(MakeTableSpec("ks." + std::string(48, 't'), "id", "d", "l", "int").table.size() == 48);
  // Columns keep CQL's quoted syntax: a dash is fine there.
  CHECK(CanonicalIdentifier("\"a-b\"", "label_col") == "a-b");
  CHECK(!Refusal([] { CanonicalIdentifier("\"a\"b\"", "label_col"); }).empty());
  CHECK(!Refusal([] { CanonicalIdentifier("1abc", "label_col"); }).empty());
}

TEST_CASE(DurationsValidated, "arguments: zero or negative timeouts are refused by name") {
  for (const char *name : {"request_timeout_ms", "connect_timeout_ms"}) {
    for (int value : {0, -5}) {
      auto message = Refusal([&] {
        SettingsFromArguments([&](const ArgumentDecl &decl) -> std::optional<ArgValue> {
          if (decl.required) return ArgValue(std::string("ks.t"));
          if (std::string(decl.name) == name) return ArgValue(value);
          return std::nullopt;
        });
      });
      CHECK(Contains(message, std::string(name) + "=" + std::to_string(value)));
    }
  }
  auto queue = Refusal([] {
    SettingsFromArguments([&](const ArgumentDecl &decl) -> std::optional<ArgValue> {
      if (decl.required) return ArgValue(std::string("ks.t"));
      if (std::string(decl.name) == "max_requests_in_flight") return ArgValue(20000);
      return std::nullopt;
    });
  });
  CHECK(Contains(queue, "max_requests_in_flight=20000"));
  CHECK(Contains(queue, std::to_string(kDriverQueueSize)));
}

TEST_CASE(DefaultsFromDeclaration, "arguments: the settings structs take their defaults from it") {
  const ReaderSettings s = DefaultReaderSettings("ks.t");
  auto declared = [](const char *name) -> const ArgValue & {
    return DeclaredArgument(name).default_value;
  };
  CHECK(ArgValue(s.connection.port) == declared("cassandra_port"));
  CHECK(ArgValue(s.connection.io_threads) == declared("io_threads"));
  CHECK(ArgValue(s.connection.request_timeout_ms) == declared("request_timeout_ms"));
  CHECK(ArgValue(s.connection.contact_points) == declared("cassandra_ips"));
  CHECK(ArgValue(s.fetch.max_in_flight) == declared("max_requests_in_flight"));
  CHECK(ArgValue(s.fetch.max_retries) == declared("max_retries"));
  CHECK(ArgValue(s.fetch.retry_budget_ms) == declared("retry_budget_ms"));
  CHECK(ArgValue(s.table.data_col) == declared("data_col"));
  const SelfFeedSettings f = SelfFeedSettingsFromArguments(
      [](const ArgumentDecl &) -> std::optional<ArgValue> { return std::nullopt; });
  CHECK(ArgValue(static_cast<int64_t>(f.shuffle_seed)) == declared("shuffle_seed"));
  CHECK(ArgValue(f.prefetch.min_batches) == declared("prefetch_buffers"));
  CHECK(ArgValue(f.prefetch.max_batches) == declared("max_prefetch_buffers"));
  CHECK(ArgValue(f.prefetch.max_bytes) == declared("prefetch_bytes"));
  CHECK(ArgValue(f.loop_forever) == declared("loop_forever"));
}

TEST_CASE(FailureKindsNotWording, "failures: the exception follows the kind, not the message") {
  try {
    ThrowPermanentFailure({0, FailureKind::kMissingRow, "anything at all"}, 1);
    CHECK(false);
  } catch (const MissingRowError &) {
  }
  try {
    ThrowPermanentFailure({0, FailureKind::kFailed, "no row with id x (worded like a miss)"}, 2);
    CHECK(false);
  } catch (const MissingRowError &) {
    CHECK(false);
  } catch (const ReadError &e) {
    CHECK(Contains(e.what(), "(and 1 more failed reads in this batch)"));
  }
  CHECK(KindOfDriverError(CASS_ERROR_LIB_REQUEST_TIMED_OUT) == FailureKind::kTransient);
  CHECK(KindOfDriverError(CASS_ERROR_SERVER_INVALID_QUERY) == FailureKind::kFailed);
}

TEST_CASE(ConnectFailuresByCode, "connect failures: sorted by the driver's codes") {
  // The driver's wording for a refused login, with the server's code embedded.
  CHECK(ClassifyConnectFailure(CASS_ERROR_LIB_NO_HOSTS_AVAILABLE,
                               "Underlying connection error: Received error response 'Provided "
                               "username u and/or password are incorrect' (0x02000100)") ==
        ConnectFailure::kCredentials);
  CHECK(ClassifyConnectFailure(CASS_ERROR_SERVER_BAD_CREDENTIALS, "") ==
        ConnectFailure::kCredentials);
  CHECK(ClassifyConnectFailure(CASS_ERROR_LIB_NO_HOSTS_AVAILABLE,
                               "Underlying connection error: handshake (0x03000004)") ==
        ConnectFailure::kTls);
  // Wording alone decides nothing.
  CHECK(ClassifyConnectFailure(CASS_ERROR_LIB_NO_HOSTS_AVAILABLE,
                               "bad credentials, SSL certificate, authentication") ==
        ConnectFailure::kOther);
  CHECK(ClassifyConnectFailure(CASS_ERROR_LIB_NO_HOSTS_AVAILABLE, "(0x0200010)") ==
        ConnectFailure::kOther);
}

}  // namespace
}  // namespace cassandra_dali
