#include "engine/uuid_list.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "engine/errors.h"

namespace cassandra_dali {
uint64_t FoldListDigest(uint64_t digest, const uint8_t *uuids, size_t count) {
  // Two 64-bit words per UUID through a multiply-xorshift mix: order-dependent, fast (the list
  // of a 10 M-row rows file is 160 MB).
  for (size_t i = 0; i < 2 * count; ++i) {
    uint64_t word;
    std::memcpy(&word, uuids + 8 * i, 8);
    digest = (digest ^ word) * 0x9E3779B97F4A7C15ull;
    digest ^= digest >> 29;
  }
  return digest;
}

namespace {

class InMemoryList final : public UuidList {
 public:
  explicit InMemoryList(std::vector<UuidBytes> uuids) : uuids_(std::move(uuids)) {}
  int64_t size() const override { return static_cast<int64_t>(uuids_.size()); }
  void Gather(const std::vector<int64_t> &indices, std::vector<UuidBytes> &out) const override {
    out.resize(indices.size());
    for (size_t k = 0; k < indices.size(); ++k) out[k] = uuids_[indices[k]];
  }
  uint64_t Digest() const override {
    return FoldListDigest(kListDigestSeed, uuids_.empty() ? nullptr : uuids_[0].data(),
                          uuids_.size());
  }

 private:
  std::vector<UuidBytes> uuids_;
};

// An owned file descriptor.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor &) = delete;
  FileDescriptor &operator=(const FileDescriptor &) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Named(const std::string &path) { return "rows file '" + Printable(path, 4096) + "'"; }

// Reads exactly `size` bytes at `offset`, or throws naming the file.
void ReadAt(int fd, void *buffer, size_t size, int64_t offset, const std::string &path) {
  auto *bytes = static_cast<char *>(buffer);
  while (size > 0) {
    const ssize_t got = ::pread(fd, bytes, size, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const std::string why = got < 0 ? std::strerror(errno) : "it ends early";
      throw ArgumentError("cannot read " + Named(path) + " at byte " + std::to_string(offset) +
                          ": " + why);
    }
    bytes += got;
    size -= static_cast<size_t>(got);
    offset += got;
  }
}

class BinaryFileList final : public UuidList {
 public:
  explicit BinaryFileList(const std::string &path)
      : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_.get() < 0) {
      const std::string why = std::strerror(errno);
      throw ArgumentError("cannot open " + Named(path) + ": " + why);
    }
    char header[kBinaryRowsHeader];
    ReadAt(fd_.get(), header, sizeof header, 0, path);
    if (std::memcmp(header, kBinaryRowsMagic, sizeof kBinaryRowsMagic) != 0) {
      throw ArgumentError(Named(path) + " is not a binary rows file");
    }
    uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = count << 8 | static_cast<uint8_t>(header[8 + i]);
    struct stat info {};
    if (::fstat(fd_.get(), &info) != 0) {
      throw ArgumentError("cannot stat " + Named(path) + ": " + std::strerror(errno));
    }
    const auto expected =
        static_cast<__int128>(kBinaryRowsHeader) + static_cast<__int128>(count) * 16;
    if (static_cast<__int128>(info.st_size) != expected) {
      throw ArgumentError(Named(path) + " says it holds " + std::to_string(count) +
                          " UUIDs but is " + std::to_string(info.st_size) +
                          " bytes long (truncated or corrupt)");
    }
    size_ = static_cast<int64_t>(count);
    // Access is random (a permutation): read-ahead would only fetch neighbours nobody needs.
    ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_RANDOM);
  }

  int64_t size() const override { return size_; }

  void Gather(const std::vector<int64_t> &indices, std::vector<UuidBytes> &out) const override {
    out.resize(indices.size());
    for (size_t k = 0; k < indices.size(); ++k) {
      ReadAt(fd_.get(), out[k].data(), 16, kBinaryRowsHeader + indices[k] * 16, path_);
    }
  }

  uint64_t Digest() const override {
    constexpr int64_t kChunk = 65536;  // UUIDs: 1 MiB
    std::vector<uint8_t> chunk(static_cast<size_t>(kChunk) * 16);
    uint64_t digest = kListDigestSeed;
    for (int64_t at = 0; at < size_; at += kChunk) {
      const int64_t n = std::min(kChunk, size_ - at);
      ReadAt(fd_.get(), chunk.data(), static_cast<size_t>(n) * 16, kBinaryRowsHeader + at * 16,
             path_);
      digest = FoldListDigest(digest, chunk.data(), static_cast<size_t>(n));
    }
    return digest;
  }

 private:
  std::string path_;
  FileDescriptor fd_;
  int64_t size_ = 0;
};

}  // namespace

std::shared_ptr<const UuidList> UuidList::InMemory(std::vector<UuidBytes> uuids) {
  return std::make_shared<InMemoryList>(std::move(uuids));
}

bool IsBinaryRowsFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof kBinaryRowsMagic] = {};
  return in.read(magic, sizeof magic) &&
         std::memcmp(magic, kBinaryRowsMagic, sizeof kBinaryRowsMagic) == 0;
}

std::shared_ptr<const UuidList> UuidList::FromFile(const std::string &path) {
  if (IsBinaryRowsFile(path)) return std::make_shared<BinaryFileList>(path);
  return InMemory(ReadUuidFile(path));
}

}  // namespace cassandra_dali
