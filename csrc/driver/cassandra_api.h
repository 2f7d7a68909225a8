// The subset of the DataStax C/C++ driver API (cassandra.h, protocol v4+) this project uses.
// Declared here, resolved at run time (driver_loader.cc): the driver is not in any package
// registry we can build against, but its C API is stable and documented.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

typedef struct CassCluster_ CassCluster;
typedef struct CassSession_ CassSession;
typedef struct CassFuture_ CassFuture;
typedef struct CassPrepared_ CassPrepared;
typedef struct CassStatement_ CassStatement;
typedef struct CassResult_ CassResult;
typedef struct CassRow_ CassRow;
typedef struct CassValue_ CassValue;
typedef struct CassSsl_ CassSsl;
typedef struct CassSchemaMeta_ CassSchemaMeta;
typedef struct CassKeyspaceMeta_ CassKeyspaceMeta;
typedef struct CassTableMeta_ CassTableMeta;
typedef struct CassColumnMeta_ CassColumnMeta;
typedef struct CassDataType_ CassDataType;
typedef struct CassIterator_ CassIterator;
typedef struct CassNode_ CassNode;
typedef struct CassExecProfile_ CassExecProfile;

typedef enum { cass_false = 0, cass_true = 1 } cass_bool_t;
typedef uint64_t cass_duration_t;  // microseconds

typedef struct CassUuid_ {
  uint64_t time_and_version;
  uint64_t clock_seq_and_node;
} CassUuid;

// An IPv4 or IPv6 address, big-endian; passed by value to cass_inet_string.
typedef struct CassInet_ {
  uint8_t address[16];
  uint8_t address_length;  // 4 or 16
} CassInet;
#define CASS_INET_STRING_LENGTH 46

typedef enum {
  CASS_CONSISTENCY_ANY = 0x0000,
  CASS_CONSISTENCY_ONE = 0x0001,
  CASS_CONSISTENCY_TWO = 0x0002,
  CASS_CONSISTENCY_THREE = 0x0003,
  CASS_CONSISTENCY_QUORUM = 0x0004,
  CASS_CONSISTENCY_ALL = 0x0005,
  CASS_CONSISTENCY_LOCAL_QUORUM = 0x0006,
  CASS_CONSISTENCY_EACH_QUORUM = 0x0007,
  CASS_CONSISTENCY_LOCAL_ONE = 0x000A,
} CassConsistency;

typedef enum {
  CASS_VALUE_TYPE_BIGINT = 0x0002,
  CASS_VALUE_TYPE_BLOB = 0x0003,
  CASS_VALUE_TYPE_INT = 0x0009,
  CASS_VALUE_TYPE_TEXT = 0x000A,
  CASS_VALUE_TYPE_UUID = 0x000C,
  CASS_VALUE_TYPE_VARCHAR = 0x000D,
  CASS_VALUE_TYPE_TIMEUUID = 0x000F,
} CassValueType;

typedef enum {
  CASS_SSL_VERIFY_NONE = 0x00,
  CASS_SSL_VERIFY_PEER_CERT = 0x01,
  CASS_SSL_VERIFY_PEER_IDENTITY = 0x02,
} CassSslVerifyFlags;

typedef enum {
  CASS_LOG_DISABLED = 0,
  CASS_LOG_CRITICAL,
  CASS_LOG_ERROR,
  CASS_LOG_WARN,
  CASS_LOG_INFO,
  CASS_LOG_DEBUG,
  CASS_LOG_TRACE,
} CassLogLevel;

// CassError codes are (source << 24) | code.
typedef int CassError;
#define CASS_ERROR_CODE(source, code) (((source) << 24) | (code))
enum : int {
  CASS_OK = 0,
  CASS_ERROR_LIB_REQUEST_QUEUE_FULL = CASS_ERROR_CODE(1, 7),
  CASS_ERROR_LIB_WRITE_ERROR = CASS_ERROR_CODE(1, 9),
  CASS_ERROR_LIB_NO_HOSTS_AVAILABLE = CASS_ERROR_CODE(1, 10),
  CASS_ERROR_LIB_REQUEST_TIMED_OUT = CASS_ERROR_CODE(1, 14),
  CASS_ERROR_LIB_UNABLE_TO_CONNECT = CASS_ERROR_CODE(1, 22),
  CASS_ERROR_SERVER_BAD_CREDENTIALS = CASS_ERROR_CODE(2, 0x0100),
  CASS_ERROR_SERVER_UNAVAILABLE = CASS_ERROR_CODE(2, 0x1000),
  CASS_ERROR_SERVER_OVERLOADED = CASS_ERROR_CODE(2, 0x1001),
  CASS_ERROR_SERVER_IS_BOOTSTRAPPING = CASS_ERROR_CODE(2, 0x1002),
  CASS_ERROR_SERVER_READ_TIMEOUT = CASS_ERROR_CODE(2, 0x1200),
  CASS_ERROR_SERVER_INVALID_QUERY = CASS_ERROR_CODE(2, 0x2200),
  CASS_ERROR_SOURCE_SSL = 3,
};

typedef void (*CassFutureCallback)(CassFuture *future, void *data);

// Latencies in microseconds of the speculative executions that answered after another one had
// (the losers, as the driver counts them), and how many.
typedef struct CassSpeculativeExecutionMetrics_ {
  uint64_t min, max, mean, stddev, median;
  uint64_t percentile_75th, percentile_95th, percentile_98th, percentile_99th, percentile_999th;
  uint64_t count;     // speculative executions aborted: they answered after the winner
  double percentage;  // of all requests
} CassSpeculativeExecutionMetrics;

}  // extern "C"

// X-macro lists: (name, return type, parameter list). One table; the required functions are
// checked whole at load time (a missing one is an error naming it), the optional ones below.
#define CASS_DALI_DRIVER_FUNCTIONS(X)                                                          \
  X(cass_log_set_level, void, (CassLogLevel))                                                  \
  X(cass_error_desc, const char *, (CassError))                                                \
  X(cass_cluster_new, CassCluster *, ())                                                       \
  X(cass_cluster_free, void, (CassCluster *))                                                  \
  X(cass_cluster_set_contact_points, CassError, (CassCluster *, const char *))                 \
  X(cass_cluster_set_port, CassError, (CassCluster *, int))                                    \
  X(cass_cluster_set_num_threads_io, CassError, (CassCluster *, unsigned))                     \
  X(cass_cluster_set_core_connections_per_host, CassError, (CassCluster *, unsigned))          \
  X(cass_cluster_set_queue_size_io, CassError, (CassCluster *, unsigned))                      \
  X(cass_cluster_set_connect_timeout, void, (CassCluster *, unsigned))                         \
  X(cass_cluster_set_request_timeout, void, (CassCluster *, unsigned))                         \
  X(cass_cluster_set_constant_reconnect, void, (CassCluster *, uint64_t))                      \
  X(cass_cluster_set_credentials, void, (CassCluster *, const char *, const char *))           \
  X(cass_cluster_set_ssl, void, (CassCluster *, CassSsl *))                                    \
  X(cass_cluster_set_token_aware_routing, void, (CassCluster *, cass_bool_t))                  \
  X(cass_cluster_set_consistency, CassError, (CassCluster *, CassConsistency))                 \
  X(cass_cluster_set_load_balance_dc_aware_n, CassError,                                       \
    (CassCluster *, const char *, size_t, unsigned, cass_bool_t))                              \
  X(cass_ssl_new, CassSsl *, ())                                                               \
  X(cass_ssl_free, void, (CassSsl *))                                                          \
  X(cass_ssl_add_trusted_cert_n, CassError, (CassSsl *, const char *, size_t))                 \
  X(cass_ssl_set_verify_flags, void, (CassSsl *, int))                                         \
  X(cass_ssl_set_cert_n, CassError, (CassSsl *, const char *, size_t))                         \
  X(cass_ssl_set_private_key_n, CassError,                                                     \
    (CassSsl *, const char *, size_t, const char *, size_t))                                   \
  X(cass_session_new, CassSession *, ())                                                       \
  X(cass_session_free, void, (CassSession *))                                                  \
  X(cass_session_connect, CassFuture *, (CassSession *, const CassCluster *))                  \
  X(cass_session_close, CassFuture *, (CassSession *))                                         \
  X(cass_session_prepare, CassFuture *, (CassSession *, const char *))                         \
  X(cass_session_execute, CassFuture *, (CassSession *, const CassStatement *))                \
  X(cass_session_get_schema_meta, const CassSchemaMeta *, (const CassSession *))               \
  X(cass_future_free, void, (CassFuture *))                                                    \
  X(cass_future_wait_timed, cass_bool_t, (CassFuture *, cass_duration_t))                      \
  X(cass_future_set_callback, CassError, (CassFuture *, CassFutureCallback, void *))           \
  X(cass_future_error_code, CassError, (CassFuture *))                                         \
  X(cass_future_error_message, void, (CassFuture *, const char **, size_t *))                  \
  X(cass_future_get_prepared, const CassPrepared *, (CassFuture *))                            \
  X(cass_future_get_result, const CassResult *, (CassFuture *))                                \
  X(cass_prepared_free, void, (const CassPrepared *))                                          \
  X(cass_prepared_bind, CassStatement *, (const CassPrepared *))                               \
  X(cass_statement_free, void, (CassStatement *))                                              \
  X(cass_statement_bind_uuid, CassError, (CassStatement *, size_t, CassUuid))                  \
  X(cass_statement_set_is_idempotent, CassError, (CassStatement *, cass_bool_t))               \
  X(cass_statement_set_consistency, CassError, (CassStatement *, CassConsistency))             \
  X(cass_result_free, void, (const CassResult *))                                              \
  X(cass_result_row_count, size_t, (const CassResult *))                                       \
  X(cass_result_first_row, const CassRow *, (const CassResult *))                              \
  X(cass_row_get_column, const CassValue *, (const CassRow *, size_t))                         \
  X(cass_value_is_null, cass_bool_t, (const CassValue *))                                      \
  X(cass_value_get_bytes, CassError, (const CassValue *, const uint8_t **, size_t *))          \
  X(cass_value_get_int32, CassError, (const CassValue *, int32_t *))                           \
  X(cass_uuid_from_string, CassError, (const char *, CassUuid *))                              \
  X(cass_schema_meta_free, void, (const CassSchemaMeta *))                                     \
  X(cass_schema_meta_keyspace_by_name_n, const CassKeyspaceMeta *,                             \
    (const CassSchemaMeta *, const char *, size_t))                                            \
  X(cass_keyspace_meta_table_by_name_n, const CassTableMeta *,                                 \
    (const CassKeyspaceMeta *, const char *, size_t))                                          \
  X(cass_table_meta_column_by_name_n, const CassColumnMeta *,                                  \
    (const CassTableMeta *, const char *, size_t))                                             \
  X(cass_column_meta_data_type, const CassDataType *, (const CassColumnMeta *))                \
  X(cass_data_type_type, CassValueType, (const CassDataType *))

// Used only to load the token ring (token_ring_loader.cc), which the reader can do without:
// resolved when the library has them. cass_future_coordinator and cass_statement_set_node came
// with driver 2.16; an older library still reads, with the ring unknown and token_ring's error
// naming them.
#define CASS_DALI_RING_FUNCTIONS(X)                                                            \
  X(cass_statement_new, CassStatement *, (const char *, size_t))                               \
  X(cass_statement_bind_string_n, CassError, (CassStatement *, size_t, const char *, size_t))  \
  X(cass_statement_set_node, CassError, (CassStatement *, const CassNode *))                   \
  X(cass_future_coordinator, const CassNode *, (CassFuture *))                                 \
  X(cass_statement_set_request_timeout, CassError, (CassStatement *, uint64_t))                \
  X(cass_value_get_string, CassError, (const CassValue *, const char **, size_t *))            \
  X(cass_value_get_inet, CassError, (const CassValue *, CassInet *))                           \
  X(cass_inet_string, void, (CassInet, char *))                                                \
  X(cass_iterator_free, void, (CassIterator *))                                                \
  X(cass_iterator_next, cass_bool_t, (CassIterator *))                                         \
  X(cass_iterator_from_result, CassIterator *, (const CassResult *))                           \
  X(cass_iterator_get_row, const CassRow *, (const CassIterator *))                            \
  X(cass_iterator_from_collection, CassIterator *, (const CassValue *))                        \
  X(cass_iterator_get_value, const CassValue *, (const CassIterator *))                        \
  X(cass_iterator_from_map, CassIterator *, (const CassValue *))                               \
  X(cass_iterator_get_map_key, const CassValue *, (const CassIterator *))                      \
  X(cass_iterator_get_map_value, const CassValue *, (const CassIterator *))

// Hedged reads (hedging.h): one execution profile per hedge delay, chosen per statement. The
// driver runs the second try (speculative execution; profiles and their metrics came with
// driver 2.10); without these the reader reads unhedged and says so once.
#define CASS_DALI_HEDGE_FUNCTIONS(X)                                                           \
  X(cass_execution_profile_new, CassExecProfile *, ())                                         \
  X(cass_execution_profile_free, void, (CassExecProfile *))                                    \
  X(cass_execution_profile_set_constant_speculative_execution_policy, CassError,               \
    (CassExecProfile *, int64_t, int))                                                         \
  X(cass_execution_profile_set_request_timeout, CassError, (CassExecProfile *, uint64_t))      \
  X(cass_execution_profile_set_consistency, CassError, (CassExecProfile *, CassConsistency))   \
  X(cass_cluster_set_execution_profile, CassError,                                             \
    (CassCluster *, const char *, CassExecProfile *))                                          \
  X(cass_statement_set_execution_profile, CassError, (CassStatement *, const char *))          \
  X(cass_session_get_speculative_execution_metrics, void,                                      \
    (const CassSession *, CassSpeculativeExecutionMetrics *))

// Every function resolved only if present (the loader lists those missing): the ring's, the
// hedges', the replica-shuffle switch (driver 2.10 on; a library without it has no ring
// functions either), and the prepare-on-up switch (2.8 on).
#define CASS_DALI_OPTIONAL_FUNCTIONS(X)                                                        \
  CASS_DALI_RING_FUNCTIONS(X)                                                                  \
  CASS_DALI_HEDGE_FUNCTIONS(X)                                                                 \
  X(cass_cluster_set_token_aware_routing_shuffle_replicas, void, (CassCluster *, cass_bool_t)) \
  X(cass_cluster_set_prepare_on_up_or_add_host, CassError, (CassCluster *, cass_bool_t))
