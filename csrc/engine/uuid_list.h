// The samples a self-fed loader walks. Small lists (source_uuids, text rows files) are held in
// memory; a binary rows file is read where it lies, 16 bytes per sample on demand, so a list of
// any length costs a rank no memory and the ranks of a node share one copy (the page cache).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/uuid.h"

namespace cassandra_dali {

// A binary rows file: this magic, the count as a little-endian uint64, then the UUIDs, 16
// bytes each in network order (cassandra_dali.dataset.rows_files writes it).
inline constexpr char kBinaryRowsMagic[8] = {'C', 'D', 'R', 'O', 'W', 'S', '0', '1'};
inline constexpr int64_t kBinaryRowsHeader = 16;

class UuidList {
 public:
  virtual ~UuidList() = default;
  virtual int64_t size() const = 0;
  // The UUIDs at `indices` (each in [0, size)), in order, into `out` (resized).
  virtual void Gather(const std::vector<int64_t> &indices, std::vector<UuidBytes> &out) const = 0;
  // A 64-bit digest of the list's UUIDs in order (the same for a text and a binary rows file
  // and for source_uuids holding one list): what a checkpoint records to tell its list from
  // another. Reads the whole list (a binary file in 1 MiB chunks).
  virtual uint64_t Digest() const = 0;

  static std::shared_ptr<const UuidList> InMemory(std::vector<UuidBytes> uuids);
  // A rows file, text or binary (told by its first bytes). Errors name the file.
  static std::shared_ptr<const UuidList> FromFile(const std::string &path);
};

// Folds 16-byte UUIDs into a running list digest (start from kListDigestSeed).
constexpr uint64_t kListDigestSeed = 0x6A09E667F3BCC909ull;
uint64_t FoldListDigest(uint64_t digest, const uint8_t *uuids, size_t count);

// True when the file starts with the binary magic.
bool IsBinaryRowsFile(const std::string &path);

}  // namespace cassandra_dali
