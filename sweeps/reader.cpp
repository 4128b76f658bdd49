#include "sweeps/reader.h"

#include <filesystem>

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

std::vector<ImageSource> parse_images(const Reader& r, const YAML::Node& n, const std::string& field) {
  if (!n) r.fail(n, field, "missing: list image files or a dataset slice");
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
    r.check_keys(it, f, {"dataset", "split", "root", "idx_images", "idx_labels", "start", "count"});
    std::string images, labels, name;
    if (it["dataset"]) {
      name = r.str(it["dataset"], f + ".dataset");
      if (name != "fashion-mnist" && name != "mnist")
        r.fail(it["dataset"], f + ".dataset", "unknown dataset '" + name + "' (valid: fashion-mnist, mnist; or give idx_images)");
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
      r.fail(it, f, "a dataset slice needs 'dataset' or 'idx_images'");
    }
    std::error_code ec;
    if (!fs::is_regular_file(images, ec)) r.fail(it, f, "no such dataset file: " + images + (it["dataset"] ? " (install dataset-" + it["dataset"].Scalar() + ")" : ""));
    int64_t total = 0;
    try {
      total = idx_count(images);
      if (!labels.empty() && idx_count(labels) != total) r.fail(it, f, "labels and images differ in count");
    } catch (const Error& e) {
      r.fail(it, f, e.what());
    }
    int64_t start = it["start"] ? r.integer(it["start"], f + ".start", 0, total) : 0;
    int64_t count = it["count"] ? r.integer(it["count"], f + ".count", 1, total) : total - start;
    if (start + count > total)
      r.fail(it["count"], f + ".count", "slice " + std::to_string(start) + "+" + std::to_string(count) + " exceeds the " +
                                          std::to_string(total) + " images of " + images);
    for (int64_t k = start; k < start + count; ++k) {
      ImageSource s;
      s.idx_images = images;
      s.idx_labels = labels;
      s.index = k;
      s.id = name + "#" + std::to_string(k);
      out.push_back(s);
    }
  }
  if (out.empty()) r.fail(n, field, "no images");
  return out;
}

}  // namespace vizsweep::sweeps
