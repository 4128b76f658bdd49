#include "runner/shard.h"

#include <hdf5.h>
#include <hdf5_hl.h>

#include <filesystem>

#include "kernels/error.h"
#include "runner/results_dir.h"

namespace vizsweep::runner {

void quiet_hdf5() {
  // No cleanup at exit: the writers close their files themselves, and a file whose writes
  // failed (disk full, file size limit) must not be flushed again while the process exits.
  static const bool once = [] { return H5dont_atexit() >= 0; }();
  (void)once;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

namespace {

// One dataset, stored as a single chunk with HDF5's Fletcher-32 checksum, so that a damaged
// file fails to read (verify and the resume check find it) instead of returning wrong numbers.
// Empty datasets stay contiguous (a chunk cannot be empty). Returns the dataset or < 0.
hid_t make_dataset(hid_t group, const std::string& name, const std::vector<hsize_t>& dims, hid_t type, const void* data) {
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  if (space < 0) return -1;
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  bool empty = dims.empty();
  for (hsize_t d : dims) empty = empty || d == 0;
  if (!empty) {
    H5Pset_chunk(dcpl, static_cast<int>(dims.size()), dims.data());
    H5Pset_fletcher32(dcpl);
  }
  hid_t ds = H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  if (ds < 0) return -1;
  if (!empty && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    H5Dclose(ds);
    return -1;
  }
  return ds;
}

}  // namespace

ShardWriter::ShardWriter(const std::string& path, size_t cache_limit, bool hold_metadata)
    : path_(path), cache_limit_(cache_limit), hold_metadata_(hold_metadata) {
  quiet_hdf5();
  open();
  if (H5Lexists(file_, "/tasks", H5P_DEFAULT) <= 0) {
    hid_t g = H5Gcreate2(file_, "/tasks", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) throw StorageError(path, "cannot create /tasks");
    H5Gclose(g);
  }
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) throw StorageError(path, "cannot write the shard file");
}

void ShardWriter::open() {
  std::error_code ec;
  if (std::filesystem::exists(path_, ec)) file_ = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  else file_ = H5Fcreate(path_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) throw StorageError(path_, "cannot create or open the shard file (permissions? disk full?)");
  // No evictions: dirty metadata reaches the disk only in H5Fflush (see the class comment).
  // HDF5 accepts that only with the cache's automatic resizing off.
  if (!hold_metadata_) return;
  H5AC_cache_config_t c;
  c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  bool held = H5Fget_mdc_config(file_, &c) >= 0;
  if (held) {
    c.evictions_enabled = false;
    c.incr_mode = H5C_incr__off;
    c.flash_incr_mode = H5C_flash_incr__off;
    c.decr_mode = H5C_decr__off;
    held = H5Fset_mdc_config(file_, &c) >= 0;
  }
  if (!held) {
    H5Fclose(file_);
    file_ = -1;
    throw StorageError(path_, "cannot configure the shard file's metadata cache");
  }
}

size_t ShardWriter::cache_bytes() const {
  size_t max_size = 0, min_clean = 0, cur = 0;
  int entries = 0;
  return H5Fget_mdc_size(file_, &max_size, &min_clean, &cur, &entries) >= 0 ? cur : 0;
}

ShardWriter::~ShardWriter() {
  if (file_ >= 0) H5Fclose(file_);
}

void ShardWriter::write(const std::string& key, const TaskData& d) {
  const std::string group = ResultsDir::group(key);
  auto fail = [&](const std::string& what) { throw StorageError(path_, "writing " + group + ": " + what + " failed (disk full or file size limit?)"); };
  if (H5Lexists(file_, group.c_str(), H5P_DEFAULT) > 0 && H5Ldelete(file_, group.c_str(), H5P_DEFAULT) < 0) fail("replace");
  hid_t g = H5Gcreate2(file_, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) fail("create group");
  struct Closer {
    hid_t g;
    ~Closer() {
      if (g >= 0) H5Gclose(g);
    }
  } closer{g};
  for (const auto& [k, v] : d.attributes)
    if (H5LTset_attribute_string(g, ".", k.c_str(), v.c_str()) < 0) fail("attribute " + k);
  for (const auto& im : d.images) {
    std::vector<hsize_t> dims{static_cast<hsize_t>(im.height), static_cast<hsize_t>(im.width)};
    if (im.channels == 3) dims.push_back(3);
    hid_t ds = make_dataset(g, im.name, dims, H5T_NATIVE_UINT8, im.pixels.data());
    if (ds < 0) fail("image " + im.name);
    // The HDF5 image attributes (what H5IMmake_image_* writes), so viewers show a picture.
    bool ok = H5LTset_attribute_string(g, im.name.c_str(), "CLASS", "IMAGE") >= 0 &&
              H5LTset_attribute_string(g, im.name.c_str(), "IMAGE_VERSION", "1.2") >= 0 &&
              H5LTset_attribute_string(g, im.name.c_str(), "IMAGE_SUBCLASS",
                                       im.channels == 3 ? "IMAGE_TRUECOLOR" : "IMAGE_GRAYSCALE") >= 0 &&
              (im.channels != 3 || H5LTset_attribute_string(g, im.name.c_str(), "INTERLACE_MODE", "INTERLACE_PIXEL") >= 0);
    H5Dclose(ds);
    if (!ok) fail("attributes of image " + im.name);
  }
  for (const auto& a : d.floats) {
    hid_t ds = make_dataset(g, a.name, {a.shape.begin(), a.shape.end()}, H5T_NATIVE_FLOAT, a.data.data());
    if (ds < 0) fail("dataset " + a.name);
    H5Dclose(ds);
  }
  for (const auto& a : d.ints) {
    hid_t ds = make_dataset(g, a.name, {a.shape.begin(), a.shape.end()}, H5T_NATIVE_INT64, a.data.data());
    if (ds < 0) fail("dataset " + a.name);
    H5Dclose(ds);
  }
  closer.g = -1;
  if (H5Gclose(g) < 0) fail("close group");
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) fail("flush");
  if (cache_bytes() > cache_limit_) {  // everything is on disk: closing writes nothing more
    H5Fclose(file_);
    file_ = -1;
    open();
    ++reopened_;
  }
}

ShardReport check_shard(const std::string& path, const std::vector<std::string>& datasets, bool full_read) {
  quiet_hdf5();
  ShardReport rep;
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    rep.error = std::filesystem::exists(path) ? "unreadable HDF5 file (truncated or corrupt)" : "missing";
    for (const auto& d : datasets) rep.unreadable.insert(d);
    return rep;
  }
  rep.opened = true;
  hid_t g = H5Gopen2(f, "/tasks", H5P_DEFAULT);
  if (g >= 0) {
    H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr,
               [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
                 static_cast<std::set<std::string>*>(out)->insert(name);
                 return 0;
               },
               &rep.tasks);
    H5Gclose(g);
  }
  std::vector<char> buf;
  for (const auto& d : datasets) {
    bool ok = false;
    if (H5Lexists(f, d.c_str(), H5P_DEFAULT) > 0) {
      hid_t ds = H5Dopen2(f, d.c_str(), H5P_DEFAULT);
      if (ds >= 0) {
        hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
        hssize_t n = H5Sget_simple_extent_npoints(space);
        size_t sz = H5Tget_size(type);
        if (!full_read) {
          ok = n >= 0 && sz > 0;
        } else if (n >= 0 && sz > 0) {
          buf.resize(static_cast<size_t>(n) * sz + 1);
          ok = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) >= 0;
        }
        H5Sclose(space);
        H5Tclose(type);
        H5Dclose(ds);
      }
    }
    if (!ok) rep.unreadable.insert(d);
  }
  H5Fclose(f);
  return rep;
}

ImageBlob read_image_blob(const std::string& path, const std::string& dataset) {
  quiet_hdf5();
  ImageBlob b;
  b.name = dataset;
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw Error(path, "cannot open the shard");
  hid_t ds = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  bool ok = ds >= 0;
  if (ok) {
    hid_t space = H5Dget_space(ds);
    hsize_t dims[3] = {0, 0, 1};
    const int rank = H5Sget_simple_extent_ndims(space);
    ok = (rank == 2 || rank == 3) && H5Sget_simple_extent_dims(space, dims, nullptr) == rank;
    H5Sclose(space);
    if (ok) {
      b.height = static_cast<int64_t>(dims[0]), b.width = static_cast<int64_t>(dims[1]);
      b.channels = rank == 3 ? static_cast<int64_t>(dims[2]) : 1;
      b.pixels.resize(static_cast<size_t>(b.height * b.width * b.channels));
      ok = H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.pixels.data()) >= 0;
    }
    H5Dclose(ds);
  }
  H5Fclose(f);
  if (!ok) throw Error(path, "cannot read image " + dataset + " (run vizsweep verify)");
  return b;
}

}  // namespace vizsweep::runner
