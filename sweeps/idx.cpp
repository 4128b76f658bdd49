#include "sweeps/idx.h"

#include <zlib.h>

#include <algorithm>
#include <memory>

#include "kernels/error.h"

namespace vizsweep::sweeps {

namespace {

struct GzFile {
  gzFile f = nullptr;
  explicit GzFile(const std::string& path) : f(gzopen(path.c_str(), "rb")) {
    if (!f) throw Error(path, "cannot open IDX file");
  }
  ~GzFile() {
    if (f) gzclose(f);
  }
  void read(void* buf, size_t n, const std::string& path) {
    int got = gzread(f, buf, static_cast<unsigned>(n));
    if (got < 0 || static_cast<size_t>(got) != n) throw Error(path, "truncated or corrupt IDX file");
  }
};

uint32_t be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Reads the header; returns the dimensions after checking the magic number.
std::vector<int64_t> header(GzFile& g, const std::string& path, int want_dims) {
  unsigned char magic[4];
  g.read(magic, 4, path);
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != want_dims)
    throw Error(path, "not an IDX file of unsigned bytes with " + std::to_string(want_dims) + " dimension(s)");
  std::vector<int64_t> dims;
  for (int i = 0; i < want_dims; ++i) {
    unsigned char b[4];
    g.read(b, 4, path);
    dims.push_back(be32(b));
  }
  return dims;
}

}  // namespace

IdxImages read_idx_images(const std::string& path, int64_t max_count) {
  GzFile g(path);
  auto d = header(g, path, 3);
  IdxImages im;
  im.count = max_count >= 0 ? std::min(d[0], max_count) : d[0];
  im.rows = d[1];
  im.cols = d[2];
  im.pixels.resize(static_cast<size_t>(im.count * im.rows * im.cols));
  if (!im.pixels.empty()) g.read(im.pixels.data(), im.pixels.size(), path);
  return im;
}

std::vector<uint8_t> read_idx_labels(const std::string& path, int64_t max_count) {
  GzFile g(path);
  auto d = header(g, path, 1);
  std::vector<uint8_t> labels(static_cast<size_t>(max_count >= 0 ? std::min(d[0], max_count) : d[0]));
  if (!labels.empty()) g.read(labels.data(), labels.size(), path);
  return labels;
}

int64_t idx_count(const std::string& path) {
  GzFile g(path);
  unsigned char magic[4];
  g.read(magic, 4, path);
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 4)
    throw Error(path, "not an IDX file of unsigned bytes");
  unsigned char b[4];
  g.read(b, 4, path);
  return be32(b);
}

}  // namespace vizsweep::sweeps
