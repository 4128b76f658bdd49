// HDF5 shard files: each rank writes its own file per run attempt
// (shards/r<rank>-<attempt>.h5), one group per task, flushed after every task.
//
// Layout (readable with h5py; see docs/results-layout.md):
//   /tasks/<task key>/            attributes: technique, layer, canonical
//     unit_<u> | image_<i>        uint8 image with the HDF5 image attributes (CLASS=IMAGE):
//                                 H x W x 3 (RGB) or H x W (gray); HDFView shows it as a picture
//     <name>                      float32 / int64 arrays: traces, metrics, float images
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace vizsweep::runner {

struct ImageBlob {
  std::string name;             // unit_7, image_3, adversarial_3, ...
  int64_t height = 0, width = 0, channels = 0;  // channels 1 or 3
  std::vector<uint8_t> pixels;  // H x W x C, row-major
};
struct FloatArray {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};
struct IntArray {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<int64_t> data;
};

struct TaskData {
  std::map<std::string, std::string> attributes;
  std::vector<ImageBlob> images;
  std::vector<FloatArray> floats;
  std::vector<IntArray> ints;
};

// A rank's shard file, written one task group at a time and flushed after each. HDF5's
// metadata cache is kept from writing anything between two flushes (no evictions), so the
// file on disk stays as the last flush left it while the next group is written: a process
// killed in the middle of a write (SIGKILL, a node failure, the OOM killer) leaves every task
// written before it readable. (With HDF5's default cache, entries written out as the cache
// fills can point past the end of file the superblock records, and the whole /tasks group
// then fails to read.) The cache so grows with what is written; once it holds more than
// `cache_limit` bytes after a flush, the file is closed and opened again, which empties it.
// (hold_metadata = false keeps HDF5's default cache: for bench/bench_shard_kill.cpp's
// comparison only.)
class ShardWriter {
 public:
  // Creates (truncating) the file at `path`, or opens it for appending when it exists.
  // Throws vizsweep::Error naming the path.
  explicit ShardWriter(const std::string& path, size_t cache_limit = size_t{64} << 20, bool hold_metadata = true);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Writes /tasks/<key> (replacing one of the same key) and flushes the file to disk.
  // Throws vizsweep::Error naming the path (disk full, file size limit, ...).
  void write(const std::string& key, const TaskData& data);
  const std::string& path() const { return path_; }
  // Bytes in the file's metadata cache now, and how many times the file was opened again to
  // empty it.
  size_t cache_bytes() const;
  int reopened() const { return reopened_; }

 private:
  void open();
  std::string path_;
  size_t cache_limit_;
  bool hold_metadata_;
  int64_t file_ = -1;
  int reopened_ = 0;
};

// Reading side, for resume checks and `vizsweep verify`.
struct ShardReport {
  bool opened = false;
  std::string error;                  // why it could not be opened
  std::set<std::string> tasks;        // task keys with a group under /tasks
  std::set<std::string> unreadable;   // datasets asked for that cannot be read
};
// Opens `path` read-only and checks every dataset in `datasets` (HDF5 paths): with
// full_read, that it can be read in full; else that it exists and opens. Never throws.
ShardReport check_shard(const std::string& path, const std::vector<std::string>& datasets, bool full_read = true);

// Reads an 8-bit image dataset (as ShardWriter writes them); throws vizsweep::Error naming the
// path and dataset when it is missing or not such an image.
ImageBlob read_image_blob(const std::string& path, const std::string& dataset);
// Rows [y0, y1) and columns [x0, x1) of an image (an exemplar's receptive-field box).
inline ImageBlob crop(const ImageBlob& image, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  ImageBlob c;
  c.height = y1 - y0, c.width = x1 - x0, c.channels = image.channels;
  for (int64_t y = y0; y < y1; ++y) {
    const auto* row = image.pixels.data() + (y * image.width + x0) * image.channels;
    c.pixels.insert(c.pixels.end(), row, row + c.width * image.channels);
  }
  return c;
}

// Silences HDF5's own error printing (errors are reported through vizsweep::Error).
void quiet_hdf5();

}  // namespace vizsweep::runner
