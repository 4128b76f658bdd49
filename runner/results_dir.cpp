#include "runner/results_dir.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace vizsweep::runner {

ResultsDir::ResultsDir(const std::string& dir) : dir_(dir) {}

ResultsDir ResultsDir::of(const std::string& sweep_name, const std::string& out) {
  if (!out.empty()) return ResultsDir(fs::absolute(out).lexically_normal().string());
  return ResultsDir((fs::absolute("results") / sweep_name).lexically_normal().string());
}

std::string ResultsDir::index() const { return (fs::path(dir_) / "index.sqlite").string(); }
std::string ResultsDir::shards() const { return (fs::path(dir_) / shards_rel()).string(); }
std::string ResultsDir::lock() const { return (fs::path(dir_) / ".vizsweep.lock").string(); }
std::string ResultsDir::slurm() const { return (fs::path(dir_) / "slurm").string(); }
std::string ResultsDir::sbatch(const std::string& name) const { return (fs::path(slurm()) / (name + ".sbatch")).string(); }

std::string ResultsDir::shard(int rank, const std::string& attempt) {
  return std::string(shards_rel()) + "/r" + std::to_string(rank) + "-" + attempt + ".h5";
}

bool ResultsDir::is_shard(const std::string& filename) { return fs::path(filename).extension() == ".h5"; }

std::string ResultsDir::group(const std::string& key) { return "/tasks/" + key; }
std::string ResultsDir::dataset(const std::string& key, const std::string& name) { return group(key) + "/" + name; }

std::vector<std::string> ResultsDir::own_names() {
  return {shards_rel(), "index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal", ".vizsweep.lock"};
}

}  // namespace vizsweep::runner
