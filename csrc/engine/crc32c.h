// CRC32C (Castagnoli), the checksum the ingest stores beside each sample and the reader checks
// on read (checksum_col): SSE4.2's crc32 instruction where the CPU has it (several GB/s per
// core, against a row's network and copy cost), a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cassandra_dali {

// The CRC32C of `size` bytes (initial value and final xor 0xFFFFFFFF, as iSCSI and ext4 use it).
uint32_t Crc32c(const uint8_t *data, size_t size);

}  // namespace cassandra_dali
