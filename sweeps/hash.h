// Stable content hashes for task keys, spec hashes and model files (not cryptographic).
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace vizsweep::sweeps {

// Incremental 128-bit hash: two FNV-1a 64 lanes with different offsets, each finished
// with the splitmix64 mixer. Same bytes, same hash, on every platform.
class Hasher {
 public:
  void update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      a_ = (a_ ^ p[i]) * 0x100000001b3ULL;
      b_ = (b_ ^ p[i]) * 0x100000001b3ULL;
    }
  }
  void update(const std::string& s) { update(s.data(), s.size()); }
  uint64_t low() const { return mix(a_ ^ 0x243f6a8885a308d3ULL); }
  uint64_t high() const { return mix(b_ ^ 0x13198a2e03707344ULL); }
  // 32 lowercase hex digits.
  std::string hex() const {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(high()),
                  static_cast<unsigned long long>(low()));
    return buf;
  }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t a_ = 0xcbf29ce484222325ULL;
  uint64_t b_ = 0x84222325cbf29ce4ULL;
};

// splitmix64 (Steele, Lea, Flood 2014): a seeded generator whose draws are the same on every
// platform (the standard library's distributions are not).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t operator()() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

inline std::string hash_hex(const std::string& s) {
  Hasher h;
  h.update(s);
  return h.hex();
}

// The hash of a file's bytes ("" when it cannot be read).
inline std::string file_hash(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  Hasher h;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(f.gcount()));
  }
  return h.hex();
}

}  // namespace vizsweep::sweeps
