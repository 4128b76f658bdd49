// The layout of a results directory, in one place: the index, the shards and their names, the
// lock, the batch scripts, and the HDF5 group of a task. analysis/index.py reads the same
// layout through one module (open_index, Shards); docs/results-layout.md describes it.
#pragma once

#include <string>
#include <vector>

namespace vizsweep::runner {

class ResultsDir {
 public:
  explicit ResultsDir(const std::string& dir);
  // --out when given, else results/<sweep name>, absolute.
  static ResultsDir of(const std::string& sweep_name, const std::string& out);

  const std::string& path() const { return dir_; }
  std::string index() const;                         // DIR/index.sqlite
  std::string shards() const;                        // DIR/shards
  std::string lock() const;                          // DIR/.vizsweep.lock
  std::string slurm() const;                         // DIR/slurm
  std::string sbatch(const std::string& name) const; // DIR/slurm/NAME.sbatch
  // A rank's shard of one run (attempt: a stamp the run shares), relative to DIR.
  static std::string shard(int rank, const std::string& attempt);
  // The shard directory relative to DIR, and whether a file name there is a shard.
  static const char* shards_rel() { return "shards"; }
  static bool is_shard(const std::string& filename);
  // A task's group in its shard: /tasks/KEY; dataset(key, name): /tasks/KEY/NAME.
  static std::string group(const std::string& key);
  static std::string dataset(const std::string& key, const std::string& name);
  // Every name a run writes directly inside DIR (it refuses symbolic links there).
  static std::vector<std::string> own_names();

 private:
  std::string dir_;
};

}  // namespace vizsweep::runner
