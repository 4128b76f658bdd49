// ResultIndex: the SQLite index of a results directory (schema: results_schema.sql).
// Rank 0 is its only writer; status, verify and analysis open it read-only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/schema.h"
#include "runner/task_state.h"
#include "sweeps/sweep.h"

struct sqlite3;

namespace vizsweep::runner {

struct TaskRow {
  std::string key;
  TaskState state = TaskState::Pending;
  int attempts = 0;
  std::string error;
};

// What a task cost and took, for comparing a projection with the run (`status`).
struct TaskTiming {
  std::string technique, layer;
  int setting = -1;
  double cost = 0;
  bool done = false;
  double seconds = 0;              // the last attempt's, when done
  std::string started, finished;   // ISO times, when done
  int rank = -1;
};

struct SweepRecord {
  std::string name, spec_text, spec_hash, model_path, model_hash, vizsweep_version, torch_version;
};

class ResultIndex {
 public:
  // Opens (creating it and the schema unless read_only) the index at `path`.
  // journal: "wal" (local disks) or "delete" (network filesystems, where WAL does not work).
  // Throws vizsweep::Error naming the path: unreadable, not an index, another major version.
  ResultIndex(const std::string& path, bool read_only, const std::string& journal = "wal");
  ~ResultIndex();
  ResultIndex(const ResultIndex&) = delete;
  ResultIndex& operator=(const ResultIndex&) = delete;

  std::string schema_version() const;
  // Records the sweep, or checks that the index already holds this one (same spec hash);
  // throws vizsweep::Error if it holds another sweep. Returns the sweep id.
  int64_t register_sweep(const SweepRecord& s);
  // Inserts class names, settings, images and tasks that are not there yet (idempotent).
  void add_plan(int64_t sweep_id, const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks,
                const std::vector<std::string>& classes);

  // Inserts tasks not there yet, inside the caller's transaction (a search's promoted trials).
  void add_tasks(int64_t sweep_id, const std::vector<const sweeps::Task*>& tasks);

  std::map<std::string, TaskRow> tasks() const;
  std::vector<TaskTiming> task_timings() const;
  // Every task in `running` goes back to pending (a previous run ended with it in flight).
  int abandon_running();
  // Done tasks go back to pending and lose their result rows.
  // A running task back to pending, as if never started (its results could not be written).
  void release(const std::string& key);
  void invalidate(const std::vector<std::string>& keys);
  // Failed tasks with attempts left go back to pending.
  int retry_failed(int max_attempts);
  // A task that failed in this run and has attempts left: failed -> pending, for the queue.
  void retry(const std::string& key);

  // Within a transaction (begin/commit): the writer's batched updates.
  void begin();
  void commit();
  void rollback();
  void mark_running(const std::string& key, int rank, const std::string& host);
  // report: the worker's JSON TaskReport (see worker.h). Succeeded: rows inserted, state done.
  // Failed: state failed, attempts + 1, error recorded.
  void record(const std::string& key, const nlohmann::json& report);

  // Result locations of done tasks: key -> (shard, datasets).
  std::map<std::string, std::pair<std::string, std::vector<std::string>>> locations() const;
  // (technique, state) -> count
  std::map<std::pair<std::string, std::string>, int64_t> progress() const;
  // Last failures: (key, technique, layer, error), newest first.
  std::vector<std::vector<std::string>> failures(int limit) const;
  nlohmann::json sweep_info() const;  // name, spec_hash, model_path, created_at

  sqlite3* handle() const { return db_; }

 private:
  // Brings an index of `version` to this schema (migrations and reconciliation; index.cpp).
  void migrate(const std::string& version);
  void rebuild_table(const SchemaObject& table);
  void exec(const std::string& sql) const;
  // Prepared statements of the per-task path (dispatch and record), kept for the life of
  // the index: preparing costs more than running them.
  class Stmt& cached(const std::string& sql);
  // After a guarded transition statement on `key`: exactly one row changed, or the task was
  // not in state `from` and the transition is illegal (std::logic_error naming the task:
  // an internal error, exit 5).
  void moved(const std::string& key, TaskState from, TaskEvent e) const;
  std::string path_;
  sqlite3* db_ = nullptr;
  std::map<std::string, std::unique_ptr<class Stmt>> stmts_;
};

}  // namespace vizsweep::runner
