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

namespace cassandra_dali {
namespace {

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

}  // namespace cassandra_dali
