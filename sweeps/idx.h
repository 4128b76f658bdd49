// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vizsweep::sweeps {

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major
};

// Reads an idx3-ubyte images file; with max_count >= 0 only the first max_count images.
// Throws vizsweep::Error naming the path for a missing, truncated or malformed file.
IdxImages read_idx_images(const std::string& path, int64_t max_count = -1);
// Reads an idx1-ubyte labels file.
std::vector<uint8_t> read_idx_labels(const std::string& path, int64_t max_count = -1);
// The item count in an IDX file's header (images or labels).
int64_t idx_count(const std::string& path);

}  // namespace vizsweep::sweeps
