// A fake DataStax driver behind the engine's function table, for the engine's tests: reads
// land from the fake's own I/O threads like the real driver's, or fail at once inside
// cass_future_set_callback (as the driver does for a session that cannot take a request), or
// never end until the test releases them (a stalled node with no timeout).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "driver/cassandra_api.h"
#include "engine/uuid.h"

namespace cassandra_dali::testing {

// What the fake does with one read.
struct FakeOutcome {
  enum Kind {
    kRow,        // the row (FakeSampleBytes of the UUID), from an I/O thread after `delay_us`
    kNoRow,      // an empty result, from an I/O thread
    kFailNow,    // `error`, already set when cass_session_execute returns: the callback runs
                 // inside cass_future_set_callback
    kFailLater,  // `error`, from an I/O thread after `delay_us`
    kNever,      // no callback until ReleaseParkedReads()
  };
  Kind kind = kRow;
  CassError error = CASS_ERROR_LIB_NO_HOSTS_AVAILABLE;
  int delay_us = 0;
};

using FakeBehaviour = std::function<FakeOutcome(const UuidBytes &uuid)>;

// Installs the fake as the process's driver (once; engine/handles use it) and starts its I/O
// threads. Later calls only change the behaviour.
void InstallFakeDriver(FakeBehaviour behaviour);
void SetFakeBehaviour(FakeBehaviour behaviour);

// Completes every kNever read on the fake's I/O threads, with its row or as timed out, and
// waits until their callbacks have returned.
void ReleaseParkedReads(bool as_rows);
int ParkedReads();

// Reads the fake has been asked for, and futures alive (issued and not yet freed by both the
// driver side and the caller).
int64_t FakeReadsExecuted();
int64_t FakeFuturesAlive();

// The sample a row holds: its UUID's 16 bytes repeated `size` times, label = first byte.
std::vector<uint8_t> FakeSampleBytes(const UuidBytes &uuid);
constexpr int kFakeSampleRepeats = 8;

}  // namespace cassandra_dali::testing
