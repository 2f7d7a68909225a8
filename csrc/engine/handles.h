// unique_ptr owners for every driver handle, so lifetimes never leak into the rest of the code.
#pragma once

#include <memory>

#include "driver/driver_loader.h"

namespace cassandra_dali {

#define CASS_DALI_HANDLE(Name, Type, free_fn)                                  \
  struct Name##Deleter {                                                 \
    void operator()(Type *p) const noexcept {                            \
      if (p) Driver().free_fn(p);                                        \
    }                                                                    \
  };                                                                     \
  using Name##Ptr = std::unique_ptr<Type, Name##Deleter>;

CASS_DALI_HANDLE(CassCluster, CassCluster, cass_cluster_free)
CASS_DALI_HANDLE(CassSession, CassSession, cass_session_free)
CASS_DALI_HANDLE(CassFuture, CassFuture, cass_future_free)
CASS_DALI_HANDLE(CassStatement, CassStatement, cass_statement_free)
CASS_DALI_HANDLE(CassSsl, CassSsl, cass_ssl_free)
CASS_DALI_HANDLE(CassPrepared, const CassPrepared, cass_prepared_free)
CASS_DALI_HANDLE(CassResult, const CassResult, cass_result_free)
CASS_DALI_HANDLE(CassSchemaMeta, const CassSchemaMeta, cass_schema_meta_free)
CASS_DALI_HANDLE(CassIterator, CassIterator, cass_iterator_free)
#undef CASS_DALI_HANDLE

}  // namespace cassandra_dali
