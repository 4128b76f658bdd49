// A rank's worker: it asks the coordinator for tasks through a Channel, runs them one after
// another, and hands each result to its writer thread, which writes the task's shard group and
// then reports the task. No MPI here: rank 0's worker talks to the coordinator through a
// LocalChannel (memory), the other ranks through run.cpp's MPI channel; tests use the
// LocalChannel with a task runner of their own (tests/runner/test_coordinator.cpp).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/shard.h"
#include "sweeps/sweep.h"

namespace vizsweep::runner {

using nlohmann::json;

// What the coordinator hands a worker: task indices, or none (stop), and what the tasks need
// from the coordinator's index (null for most: a search trial gets its units' natural
// exemplars, SearchRun::context in runner/search.h).
struct Assignment {
  std::vector<int64_t> tasks;
  json context;
  bool empty() const { return tasks.empty(); }
};

// Where a worker's tasks come from and its reports go.
class Channel {
 public:
  virtual ~Channel() = default;
  // Sends `reports` (a JSON array, may be empty) and asks for work: returns the next task
  // indices, or none when there is no more work. Called by the worker's compute thread.
  virtual Assignment exchange(json reports) = 0;
  // Sends the reports of tasks whose data is written (the writer thread).
  virtual void report(json reports) = 0;
  // Asked by the writer thread between two writes (and while idle, every 20 ms): whether the
  // coordinator wants writing to stop because it is about to abort the run (a drain deadline
  // passed). The writer then calls held() and writes nothing more, so no rank is killed in
  // the middle of a shard write: HDF5 files are not crash-safe, and a write cut short can
  // leave the tasks written before it unreadable until the next run recomputes them.
  virtual bool hold_requested() { return false; }
  virtual void held() {}
};

// Rank 0's own worker talks to the coordinator through memory, not MPI.
class LocalChannel : public Channel {
 public:
  Assignment exchange(json reports) override {
    std::unique_lock<std::mutex> lk(mu_);
    for (auto& r : reports) reports_.push_back(std::move(r));
    requested_ = true;
    wake_.notify_one();
    answered_cv_.wait(lk, [&] { return answered_; });
    answered_ = false;
    return std::move(answer_);
  }
  void report(json reports) override {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& r : reports) reports_.push_back(std::move(r));
    wake_.notify_one();
  }
  // Coordinator side: the reports that came in, and whether the worker asks for work
  // (it then waits for answer()).
  bool take(json& reports, bool& request) {
    std::lock_guard<std::mutex> lk(mu_);
    request = requested_;
    requested_ = false;
    if (reports_.empty() && !request) return false;
    reports = std::move(reports_);
    reports_ = json::array();
    return true;
  }
  // Blocks until the worker reports or asks, or `timeout` passes: the coordinator's idle
  // wait, so the local worker's next task goes out the moment it asks.
  void wait(std::chrono::microseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    wake_.wait_for(lk, timeout, [&] { return requested_ || held_ || !reports_.empty(); });
  }
  void answer(Assignment a) {
    std::lock_guard<std::mutex> lk(mu_);
    answer_ = std::move(a);
    answered_ = true;
    answered_cv_.notify_all();
  }
  bool hold_requested() override {
    std::lock_guard<std::mutex> lk(mu_);
    return hold_;
  }
  void held() override {
    std::lock_guard<std::mutex> lk(mu_);
    held_ = true;
    wake_.notify_one();
  }
  // Coordinator side: asks the writer to stop writing, and whether it has.
  void request_hold() {
    std::lock_guard<std::mutex> lk(mu_);
    hold_ = true;
  }
  bool is_held() {
    std::lock_guard<std::mutex> lk(mu_);
    return held_;
  }

 private:
  std::mutex mu_;
  std::condition_variable answered_cv_, wake_;
  json reports_ = json::array();
  bool requested_ = false, answered_ = false, hold_ = false, held_ = false;
  Assignment answer_;
};

// Runs one task with its assignment's context: fills the shard data and returns the index rows
// ({table: [rows]}); throws on failure (the engine's run, or a test's stand-in).
using TaskRunner = std::function<json(const sweeps::Task&, TaskData&, const json& context)>;

// Asks for work until the coordinator has none; runs each task and reports it once its data
// is written to DIR/shard_rel. noop: report tasks done without running or writing anything.
void worker_loop(const TaskRunner& run, const std::vector<sweeps::Task>& tasks, Channel& ch, const std::string& dir,
                 const std::string& shard_rel, int rank, bool noop);

std::string hostname();

}  // namespace vizsweep::runner
