#include "sweeps/reader.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "sweeps/idx.h"

namespace fs = std::filesystem;

namespace vizsweep::sweeps {

// Splits "0-63" / "7" into numbers.
void parse_unit_item(const Reader& r, const YAML::Node& n, const std::string& field, std::vector<int64_t>& out) {
  std::string s = r.str(n, field);
  auto dash = s.find('-', 1);
  try {
    if (dash == std::string::npos) {
      size_t used = 0;
      long long v = std::stoll(s, &used);
      if (used != s.size() || v < 0) throw std::invalid_argument(s);
      out.push_back(v);
    } else {
      size_t u1 = 0, u2 = 0;
      long long a = std::stoll(s.substr(0, dash), &u1), b = std::stoll(s.substr(dash + 1), &u2);
      if (u1 != dash || u2 != s.size() - dash - 1 || a < 0 || b < a) throw std::invalid_argument(s);
      if (b - a > 10000000) r.fail(n, field, "range '" + s + "' is too large");
      for (long long v = a; v <= b; ++v) out.push_back(v);
    }
  } catch (const std::invalid_argument&) {
    r.fail(n, field, "expected a unit number or a range like 0-63, got '" + s + "'");
  } catch (const std::out_of_range&) {
    r.fail(n, field, "number out of range in '" + s + "'");
  }
}

std::vector<int64_t> parse_units(const Reader& r, const YAML::Node& n, const std::string& field, int& line) {
  line = n.Mark().line + 1;
  std::vector<int64_t> units;
  if (n.IsScalar() && n.Scalar() == "all") return units;
  auto list = r.items(n, field);
  for (size_t i = 0; i < list.size(); ++i)
    parse_unit_item(r, list[i], n.IsSequence() ? field + "[" + std::to_string(i) + "]" : field, units);
  std::sort(units.begin(), units.end());
  units.erase(std::unique(units.begin(), units.end()), units.end());
  return units;
}

std::vector<Located> parse_layers(const Reader& r, const YAML::Node& n, const std::string& field, bool& all) {
  std::vector<Located> out;
  all = false;
  if (n.IsScalar() && n.Scalar() == "all") {
    all = true;
    return out;
  }
  auto list = r.items(n, field);
  for (size_t i = 0; i < list.size(); ++i) {
    std::string f = n.IsSequence() ? field + "[" + std::to_string(i) + "]" : field;
    out.push_back({r.str(list[i], f), list[i].Mark().line + 1, f});
  }
  return out;
}

std::vector<uint64_t> parse_seeds(const Reader& r, const YAML::Node& n, const std::string& field) {
  std::vector<uint64_t> out;
  for (const auto& x : r.items(n, field)) out.push_back(static_cast<uint64_t>(r.integer(x, field, 0, int64_t{1} << 53)));
  return out;
}

namespace {

bool has_image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

// The first bytes of a PNG or JPEG file (the decoder checks the rest when it reads the image).
bool image_signature(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[8] = {};
  in.read(reinterpret_cast<char*>(b), 8);
  const auto n = in.gcount();
  const bool png = n == 8 && b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G' && b[4] == '\r' && b[5] == '\n';
  const bool jpeg = n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
  return png || jpeg;
}

}  // namespace

std::vector<ImageSource> parse_images(const Reader& r, const YAML::Node& n, const std::string& field, int64_t* skipped) {
  if (!n) r.fail(n, field, "missing: list image files, a dataset slice or a folder");
  if (skipped) *skipped = 0;
  std::vector<ImageSource> out;
  std::vector<YAML::Node> list;
  if (n.IsMap()) list.push_back(n);
  else list = r.items(n, field);
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& it = list[i];
    std::string f = n.IsSequence() ? field + "[" + std::to_string(i) + "]" : field;
    if (it.IsScalar()) {
      ImageSource s;
      s.file = r.path(it.Scalar());
      s.id = it.Scalar();
      std::error_code ec;
      if (!fs::is_regular_file(s.file, ec)) r.fail(it, f, "no such image file: " + s.file);
      out.push_back(s);
      continue;
    }
    r.check_keys(it, f, {"dataset", "split", "root", "idx_images", "idx_labels", "folder", "start", "count"});
    // The items of the slice, before start and count: an IDX file's, or a folder's images.
    std::string images, labels, name, what;
    std::vector<std::pair<std::string, std::string>> files;  // folder: (absolute path, id)
    int64_t total = 0;
    if (it["folder"]) {
      if (it["dataset"] || it["idx_images"]) r.fail(it, f, "give one of dataset, idx_images or folder");
      const std::string written = r.str(it["folder"], f + ".folder"), root = r.path(written);
      std::error_code ec;
      if (!fs::is_directory(root, ec)) r.fail(it["folder"], f + ".folder", "no such folder: " + root);
      // Recursively, in path order: PNG and JPEG files by extension; other files are skipped
      // and counted; a file named as an image that is not one is an error.
      int64_t other = 0;
      fs::recursive_directory_iterator walk(root, fs::directory_options::skip_permission_denied, ec), end;
      if (ec) r.fail(it["folder"], f + ".folder", "cannot list " + root + ": " + ec.message());
      for (; walk != end; walk.increment(ec)) {
        if (ec) r.fail(it["folder"], f + ".folder", "cannot list " + root + ": " + ec.message());
        std::error_code e2;
        if (!walk->is_regular_file(e2)) continue;
        if (!has_image_extension(walk->path())) {
          ++other;
          continue;
        }
        const std::string rel = fs::path(walk->path()).lexically_relative(root).generic_string();
        files.push_back({walk->path().string(), (written.empty() || written.back() == '/' ? written : written + "/") + rel});
        if (files.size() > 100000000) r.fail(it["folder"], f + ".folder", "more than 100,000,000 images");
      }
      std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
      if (files.empty())
        r.fail(it["folder"], f + ".folder",
               "no PNG or JPEG images in " + root + (other ? " (" + std::to_string(other) + " other files)" : ""));
      for (const auto& [path, id] : files)
        if (!image_signature(path)) r.fail(it["folder"], f + ".folder", "not a PNG or JPEG image: " + path);
      if (skipped) *skipped += other;
      total = static_cast<int64_t>(files.size());
      what = "the " + std::to_string(total) + " images of " + root;
    } else {
      if (it["dataset"]) {
        name = r.str(it["dataset"], f + ".dataset");
        if (name != "fashion-mnist" && name != "mnist")
          r.fail(it["dataset"], f + ".dataset", "unknown dataset '" + name + "' (valid: fashion-mnist, mnist; or give idx_images or folder)");
        std::string split = it["split"] ? r.str(it["split"], f + ".split") : "test";
        if (split != "test" && split != "train") r.fail(it["split"], f + ".split", "expected test or train");
        std::string root = it["root"] ? r.path(r.str(it["root"], f + ".root")) : "/usr/share/datasets/" + name;
        std::string stem = split == "test" ? "t10k" : "train";
        images = root + "/" + stem + "-images-idx3-ubyte.gz";
        labels = root + "/" + stem + "-labels-idx1-ubyte.gz";
        name += "/" + split;
      } else if (it["idx_images"]) {
        images = r.path(r.str(it["idx_images"], f + ".idx_images"));
        if (it["idx_labels"]) labels = r.path(r.str(it["idx_labels"], f + ".idx_labels"));
        name = it["idx_images"].Scalar();
      } else {
        r.fail(it, f, "a dataset slice needs 'dataset', 'idx_images' or 'folder'");
      }
      std::error_code ec;
      if (!fs::is_regular_file(images, ec)) r.fail(it, f, "no such dataset file: " + images + (it["dataset"] ? " (install dataset-" + it["dataset"].Scalar() + ")" : ""));
      try {
        total = idx_count(images);
        if (!labels.empty() && idx_count(labels) != total) r.fail(it, f, "labels and images differ in count");
      } catch (const Error& e) {
        r.fail(it, f, e.what());
      }
      what = "the " + std::to_string(total) + " images of " + images;
    }
    int64_t start = it["start"] ? r.integer(it["start"], f + ".start", 0, total) : 0;
    if (start >= total) r.fail(it["start"], f + ".start", "slice starts past the end of " + what);
    int64_t count = it["count"] ? r.integer(it["count"], f + ".count", 1, total) : total - start;
    if (start + count > total)
      r.fail(it["count"], f + ".count", "slice " + std::to_string(start) + "+" + std::to_string(count) + " exceeds " + what);
    for (int64_t k = start; k < start + count; ++k) {
      ImageSource s;
      if (!files.empty()) {
        s.file = files[static_cast<size_t>(k)].first;
        s.id = files[static_cast<size_t>(k)].second;
      } else {
        s.idx_images = images;
        s.idx_labels = labels;
        s.index = k;
        s.id = name + "#" + std::to_string(k);
      }
      out.push_back(s);
    }
  }
  if (out.empty()) r.fail(n, field, "no images");
  return out;
}

}  // namespace vizsweep::sweeps
