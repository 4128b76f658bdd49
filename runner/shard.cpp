#include "runner/shard.h"

#include <hdf5.h>
#include <hdf5_hl.h>

#include <filesystem>

#include "kernels/error.h"

namespace vizsweep::runner {

void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

ShardWriter::ShardWriter(const std::string& path) : path_(path) {
  quiet_hdf5();
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) file_ = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  else file_ = H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) throw Error(path, "cannot create or open the shard file (permissions? disk full?)");
  if (H5Lexists(file_, "/tasks", H5P_DEFAULT) <= 0) {
    hid_t g = H5Gcreate2(file_, "/tasks", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) throw Error(path, "cannot create /tasks");
    H5Gclose(g);
  }
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) throw Error(path, "cannot write the shard file");
}

ShardWriter::~ShardWriter() {
  if (file_ >= 0) H5Fclose(file_);
}

void ShardWriter::write(const std::string& key, const TaskData& d) {
  const std::string group = "/tasks/" + key;
  auto fail = [&](const std::string& what) { throw Error(path_, "writing " + group + ": " + what + " failed (disk full or file size limit?)"); };
  if (H5Lexists(file_, group.c_str(), H5P_DEFAULT) > 0 && H5Ldelete(file_, group.c_str(), H5P_DEFAULT) < 0) fail("replace");
  hid_t g = H5Gcreate2(file_, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) fail("create group");
  struct Closer {
    hid_t g;
    ~Closer() { H5Gclose(g); }
  } closer{g};
  for (const auto& [k, v] : d.attributes)
    if (H5LTset_attribute_string(g, ".", k.c_str(), v.c_str()) < 0) fail("attribute " + k);
  for (const auto& im : d.images) {
    herr_t rc = im.channels == 3
                    ? H5IMmake_image_24bit(g, im.name.c_str(), im.width, im.height, "INTERLACE_PIXEL", im.pixels.data())
                    : H5IMmake_image_8bit(g, im.name.c_str(), im.width, im.height, im.pixels.data());
    if (rc < 0) fail("image " + im.name);
  }
  for (const auto& a : d.floats) {
    std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
    if (H5LTmake_dataset_float(g, a.name.c_str(), static_cast<int>(dims.size()), dims.data(), a.data.data()) < 0)
      fail("dataset " + a.name);
  }
  for (const auto& a : d.ints) {
    std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
    if (H5LTmake_dataset(g, a.name.c_str(), static_cast<int>(dims.size()), dims.data(), H5T_NATIVE_INT64, a.data.data()) < 0)
      fail("dataset " + a.name);
  }
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) fail("flush");
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

}  // namespace vizsweep::runner
