#include "testing/fake_driver.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "driver/driver_loader.h"

// The opaque driver types, as this fake defines them.
struct CassValue_ {
  bool null = false;
  std::vector<uint8_t> bytes;
  int32_t int32 = 0;
};
struct CassRow_ {
  std::vector<CassValue_> columns;
};
struct CassResult_ {
  bool has_row = false;
  CassRow_ row;
};
struct CassStatement_ {
  CassUuid uuid{};
};
struct CassFuture_ {
  std::mutex mutex;
  bool ready = false;
  CassError error = CASS_OK;
  std::string message;
  CassResult_ result;
  CassFutureCallback callback = nullptr;
  void *data = nullptr;
  std::atomic<int> references{2};  // the caller's and the driver's (until its callback ran)
  bool parked = false;             // kNever: completed by ReleaseParkedReads
};

namespace cassandra_dali::testing {
namespace {

struct Work {
  CassFuture_ *future;
  std::chrono::steady_clock::time_point due;
};

struct FakeState {
  std::mutex mutex;
  std::condition_variable wake, parked_done;
  FakeBehaviour behaviour;
  std::deque<Work> work;
  std::vector<CassFuture_ *> parked;
  int releasing = 0;  // parked reads handed to the I/O threads, callbacks not yet returned
  std::vector<std::thread> threads;
  std::atomic<int64_t> executed{0};
  std::atomic<int64_t> alive{0};
};

FakeState &State() {
  static FakeState *state = new FakeState();  // its threads run for the process's life
  return *state;
}

void Release(CassFuture_ *future) {
  if (future->references.fetch_sub(1) == 1) {
    State().alive.fetch_sub(1);
    delete future;
  }
}

// Sets the outcome and runs the callback if one is set, on the calling thread.
void Complete(CassFuture_ *future) {
  CassFutureCallback callback;
  void *data;
  {
    std::lock_guard<std::mutex> lock(future->mutex);
    future->ready = true;
    callback = future->callback;
    data = future->data;
  }
  if (callback) {
    callback(future, data);
    Release(future);  // the driver's reference, once its callback has run
  }
}

void IoThread() {
  auto &s = State();
  std::unique_lock<std::mutex> lock(s.mutex);
  for (;;) {
    if (s.work.empty()) {
      s.wake.wait(lock);
      continue;
    }
    Work next = s.work.front();
    const auto now = std::chrono::steady_clock::now();
    if (next.due > now) {
      s.wake.wait_until(lock, next.due);
      continue;
    }
    s.work.pop_front();
    const bool parked = next.future->parked;
    lock.unlock();
    Complete(next.future);
    lock.lock();
    if (parked && --s.releasing == 0) s.parked_done.notify_all();
  }
}

void Schedule(CassFuture_ *future, int delay_us) {
  auto &s = State();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.work.push_back({future, std::chrono::steady_clock::now() +
                                  std::chrono::microseconds(delay_us)});
  }
  s.wake.notify_all();
}

UuidBytes Bytes(const CassUuid &uuid) { return FromCassUuid(uuid); }

// --- the driver functions the engine's read path calls ---

CassStatement *PreparedBind(const CassPrepared *) { return new CassStatement_(); }
void StatementFree(CassStatement *statement) { delete statement; }
CassError BindUuid(CassStatement *statement, size_t, CassUuid uuid) {
  statement->uuid = uuid;
  return CASS_OK;
}
CassError SetIdempotent(CassStatement *, cass_bool_t) { return CASS_OK; }
CassError SetConsistency(CassStatement *, CassConsistency) { return CASS_OK; }

CassFuture *Execute(CassSession *, const CassStatement *statement) {
  auto &s = State();
  s.executed.fetch_add(1);
  s.alive.fetch_add(1);
  auto *future = new CassFuture_();
  const UuidBytes uuid = Bytes(statement->uuid);
  FakeBehaviour behaviour;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    behaviour = s.behaviour;
  }
  const FakeOutcome outcome = behaviour ? behaviour(uuid) : FakeOutcome{};
  switch (outcome.kind) {
    case FakeOutcome::kRow:
    case FakeOutcome::kNever: {
      future->result.has_row = true;
      CassValue_ data;
      data.bytes = FakeSampleBytes(uuid);
      CassValue_ label;
      label.int32 = uuid[0];
      future->result.row.columns = {data, label};
      if (outcome.kind == FakeOutcome::kRow) {
        Schedule(future, outcome.delay_us);
      } else {
        future->parked = true;
        std::lock_guard<std::mutex> lock(s.mutex);
        s.parked.push_back(future);
      }
      break;
    }
    case FakeOutcome::kNoRow:
      Schedule(future, outcome.delay_us);
      break;
    case FakeOutcome::kFailNow:
      future->error = outcome.error;
      future->message = "fake: failed at once";
      future->ready = true;
      break;
    case FakeOutcome::kFailLater:
      future->error = outcome.error;
      future->message = "fake: failed";
      Schedule(future, outcome.delay_us);
      break;
  }
  return future;
}

CassError SetCallback(CassFuture *future, CassFutureCallback callback, void *data) {
  bool run_now;
  {
    std::lock_guard<std::mutex> lock(future->mutex);
    if (future->callback) return CASS_ERROR_CODE(1, 0x0F);  // the driver: callback already set
    future->callback = callback;
    future->data = data;
    run_now = future->ready;
  }
  if (run_now) {  // as the driver does: a future already set runs the callback here
    callback(future, data);
    Release(future);
  }
  return CASS_OK;
}

void FutureFree(CassFuture *future) { Release(future); }
CassError FutureErrorCode(CassFuture *future) {
  std::lock_guard<std::mutex> lock(future->mutex);
  return future->error;
}
void FutureErrorMessage(CassFuture *future, const char **message, size_t *length) {
  std::lock_guard<std::mutex> lock(future->mutex);
  *message = future->message.data();
  *length = future->message.size();
}
const CassResult *FutureGetResult(CassFuture *future) {
  std::lock_guard<std::mutex> lock(future->mutex);
  if (future->error != CASS_OK) return nullptr;
  return new CassResult_(future->result);
}
void ResultFree(const CassResult *result) { delete result; }
size_t ResultRowCount(const CassResult *result) { return result->has_row ? 1 : 0; }
const CassRow *ResultFirstRow(const CassResult *result) {
  return result->has_row ? &result->row : nullptr;
}
const CassValue *RowGetColumn(const CassRow *row, size_t index) {
  return index < row->columns.size() ? &row->columns[index] : nullptr;
}
cass_bool_t ValueIsNull(const CassValue *value) { return value->null ? cass_true : cass_false; }
CassError ValueGetBytes(const CassValue *value, const uint8_t **bytes, size_t *size) {
  *bytes = value->bytes.data();
  *size = value->bytes.size();
  return CASS_OK;
}
CassError ValueGetInt32(const CassValue *value, int32_t *out) {
  *out = value->int32;
  return CASS_OK;
}
void PreparedFree(const CassPrepared *) {}
const char *ErrorDesc(CassError) { return "fake error"; }

}  // namespace

std::vector<uint8_t> FakeSampleBytes(const UuidBytes &uuid) {
  std::vector<uint8_t> bytes;
  for (int i = 0; i < kFakeSampleRepeats; ++i) bytes.insert(bytes.end(), uuid.begin(), uuid.end());
  return bytes;
}

void InstallFakeDriver(FakeBehaviour behaviour) {
  auto &s = State();
  SetFakeBehaviour(std::move(behaviour));
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.threads.empty()) return;
  DriverApi api;
  api.cass_prepared_bind = PreparedBind;
  api.cass_prepared_free = PreparedFree;
  api.cass_statement_free = StatementFree;
  api.cass_statement_bind_uuid = BindUuid;
  api.cass_statement_set_is_idempotent = SetIdempotent;
  api.cass_statement_set_consistency = SetConsistency;
  api.cass_session_execute = Execute;
  api.cass_future_set_callback = SetCallback;
  api.cass_future_free = FutureFree;
  api.cass_future_error_code = FutureErrorCode;
  api.cass_future_error_message = FutureErrorMessage;
  api.cass_future_get_result = FutureGetResult;
  api.cass_result_free = ResultFree;
  api.cass_result_row_count = ResultRowCount;
  api.cass_result_first_row = ResultFirstRow;
  api.cass_row_get_column = RowGetColumn;
  api.cass_value_is_null = ValueIsNull;
  api.cass_value_get_bytes = ValueGetBytes;
  api.cass_value_get_int32 = ValueGetInt32;
  api.cass_error_desc = ErrorDesc;
  InstallDriverForTesting(api);
  for (int i = 0; i < 2; ++i) {
    s.threads.emplace_back(IoThread);
    s.threads.back().detach();
  }
}

void SetFakeBehaviour(FakeBehaviour behaviour) {
  std::lock_guard<std::mutex> lock(State().mutex);
  State().behaviour = std::move(behaviour);
}

void ReleaseParkedReads(bool as_rows) {
  auto &s = State();
  std::unique_lock<std::mutex> lock(s.mutex);
  for (auto *future : s.parked) {
    if (!as_rows) {
      std::lock_guard<std::mutex> future_lock(future->mutex);
      future->error = CASS_ERROR_LIB_REQUEST_TIMED_OUT;
      future->message = "fake: timed out";
    }
    s.work.push_back({future, std::chrono::steady_clock::now()});
    ++s.releasing;
  }
  s.parked.clear();
  s.wake.notify_all();
  s.parked_done.wait(lock, [&] { return s.releasing == 0; });
}

int ParkedReads() {
  std::lock_guard<std::mutex> lock(State().mutex);
  return static_cast<int>(State().parked.size());
}

int64_t FakeReadsExecuted() { return State().executed.load(); }
int64_t FakeFuturesAlive() { return State().alive.load(); }

}  // namespace cassandra_dali::testing
