#include "runner/worker.h"

#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "kernels/error.h"

namespace fs = std::filesystem;

namespace vizsweep::runner {

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

namespace {

using Clock = std::chrono::steady_clock;

// A worker's writer thread: writes each finished task's data to the rank's shard and then
// reports the task, while the compute thread goes on with the next one. At most `depth`
// results wait (the compute thread blocks beyond that), which bounds the memory held.
class ResultWriter {
 public:
  ResultWriter(Channel& ch, std::string dir, std::string shard_rel, size_t depth = 4)
      : ch_(ch), dir_(std::move(dir)), shard_rel_(std::move(shard_rel)), depth_(depth), thread_([this] { run(); }) {}
  ~ResultWriter() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // A task's report, with its data to write first (none: a failed task, reported as is).
  void submit(json report, std::optional<TaskData> data) {
    std::unique_lock<std::mutex> lk(mu_);
    space_.wait(lk, [&] { return held_ || queue_.size() < depth_; });
    if (held_) return;  // writing has stopped for good: the task is abandoned
    queue_.push_back({std::move(report), std::move(data)});
    cv_.notify_all();
  }

 private:
  void run() {
    for (;;) {
      // Between two writes: does the coordinator want writing to stop (see Channel::held)?
      // (held_ is set by this thread alone, so it reads it here without the lock.)
      if (!held_ && ch_.hold_requested()) {
        {
          std::lock_guard<std::mutex> lk(mu_);
          held_ = true;
          queue_.clear();  // abandoned: these tasks go back to pending
        }
        space_.notify_all();
        ch_.held();
      }
      std::pair<json, std::optional<TaskData>> item;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait_for(lk, std::chrono::milliseconds(20), [&] { return stop_ || (!held_ && !queue_.empty()); });
        // Stop: with everything written and reported, or once held, with the rest abandoned.
        if (stop_ && (held_ || queue_.empty())) return;
        if (held_ || queue_.empty()) continue;
        item = std::move(queue_.front());
        queue_.pop_front();
        space_.notify_all();
      }
      json& report = item.first;
      if (item.second) {
        auto t0 = Clock::now();
        write(report, *item.second);
        report["write_seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
      }
      ch_.report(json::array({std::move(report)}));
    }
  }
  void write(json& report, const TaskData& data) {
    try {
      if (!failed_.empty()) throw StorageError(shard_rel_, "an earlier write to this shard failed: " + failed_);
      if (!writer_) writer_ = std::make_unique<ShardWriter>((fs::path(dir_) / shard_rel_).string());
      writer_->write(report.at("key").get<std::string>(), data);
      report["shard"] = shard_rel_;
    } catch (const std::exception& e) {
      // The task goes back to pending (no rows); a shard that failed a write is not written
      // again by this run.
      if (failed_.empty()) failed_ = e.what();
      writer_.reset();
      report = json{{"task", report.at("task")}, {"key", report.at("key")}, {"rank", report.at("rank")},
                    {"host", report.at("host")}, {"ok", false}, {"storage", true}, {"error", e.what()}};
    }
  }

  Channel& ch_;
  const std::string dir_, shard_rel_;
  const size_t depth_;
  std::unique_ptr<ShardWriter> writer_;
  std::string failed_;
  std::mutex mu_;
  std::condition_variable cv_, space_;
  std::deque<std::pair<json, std::optional<TaskData>>> queue_;
  bool stop_ = false, held_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace

void worker_loop(const TaskRunner& run, const std::vector<sweeps::Task>& tasks, Channel& ch, const std::string& dir,
                 const std::string& shard_rel, int rank, bool noop) {
  const std::string host = hostname();
  json noop_reports = json::array();
  ResultWriter out(ch, dir, shard_rel);
  for (;;) {
    Assignment a = ch.exchange(std::move(noop_reports));
    noop_reports = json::array();
    if (a.empty()) break;
    for (int64_t idx : a.tasks) {
      const auto& task = tasks.at(static_cast<size_t>(idx));
      auto t0 = Clock::now();
      json report{{"task", idx}, {"key", task.key}, {"rank", rank}, {"host", host}};
      if (noop) {  // dispatch, report and commit only: what the runner itself costs per task
        report["ok"] = true;
        noop_reports.push_back(std::move(report));
        continue;
      }
      std::optional<TaskData> data;
      try {
        data.emplace();
        json rows = run(task, *data, a.context);
        report.update(rows);
        report["ok"] = true;
      } catch (const std::exception& e) {
        data.reset();
        report["ok"] = false;
        report["error"] = e.what();
      }
      report["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
      out.submit(std::move(report), std::move(data));
    }
  }
}

}  // namespace vizsweep::runner
