// vizsweep run: rank 0 coordinates (and works, through a local worker thread); every
// rank pulls tasks, runs them on its device and writes its own shard.
#include <mpi.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "kernels/error.h"
#include "runner/commands.h"
#include "runner/engine.h"
#include "runner/index.h"
#include "runner/results_dir.h"
#include "runner/protocol.h"
#include "runner/shard.h"
#include "runner/task_state.h"
#include "sweeps/sweep.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace vizsweep::runner {

namespace {

using Clock = std::chrono::steady_clock;

// Set by SIGUSR1 / SIGTERM / SIGINT (what Slurm sends before a time limit): the coordinator
// stops handing out tasks, lets in-flight ones finish, and exits with kExitDrained.
volatile std::sig_atomic_t g_drain = 0;
extern "C" void on_drain_signal(int) { g_drain = 1; }

void install_drain_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_drain_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGUSR1, SIGTERM}) sigaction(sig, &sa, nullptr);
  sa.sa_flags |= SA_RESETHAND;  // a second Ctrl-C stops at once
  sigaction(SIGINT, &sa, nullptr);
}

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string duration(double s) {
  char buf[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

// What the coordinator hands a worker: task indices, or none (stop).
using Assignment = std::vector<int64_t>;

// Where a worker's tasks come from and its reports go.
class Channel {
 public:
  virtual ~Channel() = default;
  // Sends `reports` (a JSON array, may be empty) and asks for work: returns the next task
  // indices, or none when there is no more work. Called by the worker's compute thread.
  virtual Assignment exchange(json reports) = 0;
  // Sends the reports of tasks whose data is written (the writer thread).
  virtual void report(json reports) = 0;
};

// Ranks > 0. Both the compute thread and the writer thread talk to the coordinator; MPI is
// initialized with MPI_THREAD_SERIALIZED and every call goes through one mutex. Where the MPI
// library offers less, the writer's reports wait for the compute thread's next request.
class MpiChannel : public Channel {
 public:
  explicit MpiChannel(bool serialized) : serialized_(serialized) {}
  Assignment exchange(json reports) override {
    std::unique_lock<std::mutex> lk(mu_);
    for (auto& r : held_) reports.push_back(std::move(r));
    held_.clear();
    std::string s = reports.dump();
    MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, 0, protocol::kRequest, MPI_COMM_WORLD);
    // Wait for the answer without holding the lock, so the writer can report meanwhile.
    MPI_Status st;
    for (int polls = 0;; ++polls) {
      int flag = 0;
      MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
      if (flag) break;
      lk.unlock();
      if (polls < 20) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(50));
      lk.lock();
    }
    int n = 0;
    MPI_Get_count(&st, MPI_INT64_T, &n);
    Assignment a(static_cast<size_t>(n));
    MPI_Recv(a.data(), n, MPI_INT64_T, 0, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (st.MPI_TAG != protocol::kTask) a.clear();
    return a;
  }
  void report(json reports) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (!serialized_) {
      for (auto& r : reports) held_.push_back(std::move(r));
      return;
    }
    std::string s = reports.dump();
    MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, 0, protocol::kResult, MPI_COMM_WORLD);
  }

 private:
  bool serialized_;
  std::mutex mu_;
  json held_ = json::array();
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
    wake_.wait_for(lk, timeout, [&] { return requested_ || !reports_.empty(); });
  }
  void answer(Assignment a) {
    std::lock_guard<std::mutex> lk(mu_);
    answer_ = std::move(a);
    answered_ = true;
    answered_cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable answered_cv_, wake_;
  json reports_ = json::array();
  bool requested_ = false, answered_ = false;
  Assignment answer_;
};

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
    space_.wait(lk, [&] { return queue_.size() < depth_; });
    queue_.push_back({std::move(report), std::move(data)});
    cv_.notify_all();
  }

 private:
  void run() {
    for (;;) {
      std::pair<json, std::optional<TaskData>> item;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop, with everything written and reported
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
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

void worker_loop(Engine& engine, const std::vector<sweeps::Task>& tasks, Channel& ch, const std::string& dir,
                 const std::string& shard_rel, int rank, bool noop) {
  const std::string host = hostname();
  json noop_reports = json::array();
  ResultWriter out(ch, dir, shard_rel);
  for (;;) {
    Assignment a = ch.exchange(std::move(noop_reports));
    noop_reports = json::array();
    if (a.empty()) break;
    for (int64_t idx : a) {
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
        json rows = engine.run(task, *data);
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

// Agreement of all ranks on whether setup succeeded: 1 when every rank passes ok = true.
bool all_ok(bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

// Holds an exclusive lock on DIR/.vizsweep.lock so two runs never share a directory.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    std::string p = ResultsDir(dir).lock();
    fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(dir, "cannot create a lock file (read-only directory?)");
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      fd_ = -1;
      throw Error(dir, "another vizsweep run is using this results directory");
    }
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
};

// Everything a run writes lies inside its results directory: it refuses to write through
// symbolic links planted there (the directory itself may be one, e.g. to scratch space).
void refuse_symlinks(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  for (const auto& name : ResultsDir::own_names())
    if (fs::is_symlink(d / name, ec))
      throw Error((d / name).string(), "is a symbolic link; vizsweep writes only inside the results directory (remove the link)");
  if (fs::is_directory(ResultsDir(dir).shards(), ec))
    for (const auto& e : fs::directory_iterator(ResultsDir(dir).shards(), ec))
      if (e.is_symlink(ec)) throw Error(e.path().string(), "is a symbolic link; vizsweep writes only inside the results directory");
}

struct DrainDeadline {};

struct Coordinator {
  ResultIndex& index;
  const std::vector<sweeps::Task>& tasks;
  int size;
  int max_attempts;
  double progress_seconds;
  double drain_seconds;
  LocalChannel* local;
  bool drained = false;
  Clock::time_point drain_started;
  std::string storage_error;  // first failed shard write: the run stops

  std::deque<int64_t> queue;
  std::map<int64_t, int> attempts;
  std::set<int> waiting_remote;
  bool local_waiting = false;
  double compute_seconds = 0, write_seconds = 0;  // summed over the reports of this run
  bool noop = false;  // no-op tasks: the estimated cost of a task is none
  int in_flight = 0;
  int64_t total = 0, done = 0, failed = 0, done_this_run = 0;
  bool local_stopped = false;
  int idle_polls = 0;
  std::set<int> stopped;
  int batched = 0;
  Clock::time_point last_commit = Clock::now(), last_progress = Clock::now(), started = Clock::now();
  bool tty = isatty(STDERR_FILENO);

  void handle(const json& report) {
    compute_seconds += report.value("seconds", 0.0);
    write_seconds += report.value("write_seconds", 0.0);
    int64_t idx = report.at("task").get<int64_t>();
    const auto& task = tasks.at(static_cast<size_t>(idx));
    if (report.value("storage", false)) {
      // Results cannot be written: the task goes back to pending (no attempt counted, no
      // rows), and the run stops handing out work, like a drain, then exits kExitStorage.
      index.release(task.key);
      ++batched;
      --in_flight;
      if (storage_error.empty()) {
        storage_error = report.value("error", std::string("?"));
        std::fprintf(stderr, "\n[vizsweep] error: results cannot be written on rank %d: %s\n"
                             "[vizsweep] stopping: no new tasks; tasks in flight finish, the rest stay pending\n",
                     report.value("rank", -1), storage_error.c_str());
        drained = true;
        drain_started = Clock::now();
        queue.clear();
      }
      return;
    }
    index.record(task.key, report);
    ++batched;
    --in_flight;
    if (report.value("ok", false)) {
      ++done, ++done_this_run;
    } else {
      int a = ++attempts[idx];
      std::fprintf(stderr, "\n[vizsweep] task %s (%s %s) failed on rank %d (attempt %d of %d): %s\n", task.key.substr(0, 12).c_str(),
                   task.technique.c_str(), task.layer.c_str(), report.value("rank", -1), a, max_attempts,
                   report.value("error", std::string("?")).c_str());
      if (a < max_attempts) {
        index.retry(task.key);
        if (!drained) queue.push_back(idx);  // retried after the rest (after a drain: by the next run)
      } else {
        ++failed;
      }
    }
  }

  // The next assignment for `rank`, most expensive tasks first (the queue is sorted): one
  // task, or several cheap ones together (up to kBatchFlops of estimated work, 64 tasks, and
  // a fair share of what is left so the last tasks still spread over the ranks).
  static constexpr double kBatchFlops = 2e8;  // about a millisecond of compute
  Assignment next(int rank) {
    Assignment a;
    const size_t share = std::max<size_t>(1, queue.size() / (2 * static_cast<size_t>(size)));
    double flops = 0;
    while (!queue.empty() && a.size() < std::min<size_t>(64, share)) {
      int64_t idx = queue.front();
      double c = noop ? 0.0 : tasks[static_cast<size_t>(idx)].cost;
      if (!a.empty() && flops + c > kBatchFlops) break;
      flops += c;
      queue.pop_front();
      index.mark_running(tasks[static_cast<size_t>(idx)].key, rank, "");
      a.push_back(idx);
    }
    batched += static_cast<int>(a.size());
    in_flight += static_cast<int>(a.size());
    return a;
  }

  void handle_all(const json& reports) {
    for (const auto& r : reports) handle(r);
  }

  void maybe_commit(bool force) {
    if (batched == 0) return;
    auto now = Clock::now();
    if (force || batched >= 256 || now - last_commit > std::chrono::milliseconds(250)) {
      index.commit();
      index.begin();
      batched = 0;
      last_commit = now;
    }
  }

  void progress(bool final) {
    auto now = Clock::now();
    double since = std::chrono::duration<double>(now - last_progress).count();
    if (!final && since < (tty ? 0.5 : progress_seconds)) return;
    last_progress = now;
    double el = std::chrono::duration<double>(now - started).count();
    double rate = el > 0 ? done_this_run / el : 0;
    int64_t left = total - done - failed;
    char line[256];
    std::snprintf(line, sizeof line, "[vizsweep] %lld/%lld tasks done (%.0f%%), %.2f tasks/s, ETA %s, %lld failed, %d running",
                  static_cast<long long>(done), static_cast<long long>(total), total ? 100.0 * done / total : 100.0, rate,
                  rate > 0 ? duration(left / rate).c_str() : "?", static_cast<long long>(failed), in_flight);
    if (tty) std::fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
    else std::fprintf(stderr, "%s\n", line);
    std::fflush(stderr);
  }

  void loop() {
    index.begin();
    const int remote = size - 1;
    while (!(local_stopped && static_cast<int>(stopped.size()) == remote)) {
      if (g_drain && !drained) {
        drained = true;
        drain_started = Clock::now();
        std::fprintf(stderr, "\n[vizsweep] drain requested: no new tasks; waiting for %d in flight (up to %.0fs)\n", in_flight,
                     drain_seconds);
        queue.clear();  // what is left stays pending in the index for the next run
      }
      if (drained && in_flight > 0 && Clock::now() - drain_started > std::chrono::duration<double>(drain_seconds)) {
        maybe_commit(true);
        index.commit();
        std::fprintf(stderr, "[vizsweep] drain deadline passed with %d task(s) in flight: abandoning them\n", in_flight);
        throw DrainDeadline{};
      }
      bool busy = false;
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
      if (flag) {
        busy = true;
        int n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        std::string buf(static_cast<size_t>(n), '\0');
        MPI_Recv(buf.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        handle_all(json::parse(buf));
        if (st.MPI_TAG == protocol::kRequest) waiting_remote.insert(st.MPI_SOURCE);
      }
      json reps;
      bool asked = false;
      if (!local_stopped && local->take(reps, asked)) {
        busy = true;
        handle_all(reps);
        local_waiting = local_waiting || asked;
      }
      // Hand out work to every rank that asked.
      for (auto it = waiting_remote.begin(); it != waiting_remote.end() && !queue.empty();) {
        Assignment a = next(*it);
        MPI_Send(a.data(), static_cast<int>(a.size()), MPI_INT64_T, *it, protocol::kTask, MPI_COMM_WORLD);
        it = waiting_remote.erase(it);
        busy = true;
      }
      if (local_waiting && !queue.empty()) {
        local->answer(next(0));
        local_waiting = false;
        busy = true;
      }
      if (queue.empty() && in_flight == 0) {
        maybe_commit(true);  // everything on disk before anyone is told to stop
        for (int r : waiting_remote) {
          MPI_Send(nullptr, 0, MPI_INT64_T, r, protocol::kStop, MPI_COMM_WORLD);
          stopped.insert(r);
        }
        waiting_remote.clear();
        if (local_waiting) {
          local->answer({});
          local_waiting = false;
          local_stopped = true;
        }
      }
      maybe_commit(false);
      progress(false);
      // Idle: poll MPI again at once for a while after activity (reports tend to come in
      // bursts), then wait up to 200 us at a time, waking early when the local worker reports.
      if (busy) {
        idle_polls = 0;
      } else if (++idle_polls < 64 && size > 1) {
        std::this_thread::yield();
      } else {
        local->wait(std::chrono::microseconds(local_stopped ? 0 : 200));
        if (local_stopped) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    maybe_commit(true);
    index.commit();
    progress(true);
  }
};

// Resume check: done tasks whose data cannot be opened are recomputed.
int invalidate_unreadable(ResultIndex& index, const std::string& dir) {
  std::map<std::string, std::vector<std::pair<std::string, std::vector<std::string>>>> by_shard;
  for (auto& [key, loc] : index.locations()) by_shard[loc.first].push_back({key, loc.second});
  std::vector<std::string> bad;
  for (const auto& [shard, entries] : by_shard) {
    std::vector<std::string> datasets;
    for (const auto& e : entries) datasets.insert(datasets.end(), e.second.begin(), e.second.end());
    auto rep = check_shard((fs::path(dir) / shard).string(), datasets, /*full_read=*/true);
    for (const auto& e : entries)
      for (const auto& d : e.second)
        if (rep.unreadable.count(d)) {
          bad.push_back(e.first);
          break;
        }
  }
  index.invalidate(bad);
  return static_cast<int>(bad.size());
}

std::string pick_device(const std::string& policy, int local_rank) {
  if (policy == "cpu") return "cpu";
  bool cuda = Engine::cuda_available();
  if (policy == "cuda" && !cuda) throw Error("device", "cuda requested but no CUDA device is available");
  if (!cuda) return "cpu";
  int n = Engine::cuda_device_count();
  const char* slurm_local = std::getenv("SLURM_LOCALID");
  int id = slurm_local ? std::atoi(slurm_local) : local_rank;
  return "cuda:" + std::to_string(n > 0 ? id % n : 0);
}

// The plan sizes tasks to batch_memory_gb of working memory; on CPU ranks, warn when the
// node's available memory cannot hold that for each of its ranks.
void warn_memory(const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks, int local_ranks) {
  const sweeps::Task* big = nullptr;
  for (const auto& t : tasks)
    if (!big || t.memory > big->memory) big = &t;
  if (!big) return;
  std::ifstream in("/proc/meminfo");
  double avail_kb = 0;
  for (std::string key; in >> key;) {
    if (key == "MemAvailable:") {
      in >> avail_kb;
      break;
    }
    in.ignore(1 << 20, '\n');
  }
  const double gib = 1024.0 * 1024.0 * 1024.0, need = big->memory * local_ranks, avail = avail_kb * 1024.0;
  if (avail > 0 && need > avail)
    std::fprintf(stderr, "[vizsweep] warning: the largest task (%s %s, %zu items) may need up to %.1f GiB of working memory, "
                         "x %d rank(s) on this node = %.1f GiB, but %.1f GiB is available: lower batch_memory_gb (now %g) "
                         "or run fewer ranks per node\n",
                 big->technique.c_str(), big->layer.c_str(), big->items.size(), big->memory / gib, local_ranks,
                 need / gib, avail / gib, spec.batch_memory_gb);
}

}  // namespace


// A rank started by mpirun or srun whose launcher has died (its parent process changed) stops
// at once, as the launcher's own death would have stopped it: a rerun resumes. Without this,
// orphaned ranks could go on holding the results directory. Not for a plain `vizsweep run`,
// which may outlive its shell on purpose (nohup).
void watch_launcher() {
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("SLURM_STEP_ID")) return;
  const pid_t parent = getppid();
  std::thread([parent] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (getppid() != parent) {
        const char msg[] = "vizsweep: the launcher (mpirun or srun) is gone; stopping this rank\n";
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(kExitInternal);
      }
    }
  }).detach();
}

int run_command(const RunOptions& o, int* argc, char*** argv) {
  // Past a file size limit (ulimit -f) a write fails with EFBIG instead of killing the rank,
  // so the run can say which file and stop cleanly.
  signal(SIGXFSZ, SIG_IGN);
  quiet_hdf5();  // before any other HDF5 call
  watch_launcher();
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  install_drain_handlers();
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  int local_rank = 0, local_size = 1;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  auto say = [&](const std::string& msg) {
    if (rank == 0) std::cerr << "vizsweep: " << msg << "\n";
  };
  int code = kExitOk;
  std::string err;
  std::optional<sweeps::SweepSpec> spec;
  std::unique_ptr<Engine> engine;
  std::vector<sweeps::Task> tasks;
  std::string dir;
  try {
    if (const char* nt = std::getenv("SLURM_NTASKS")) {
      if (std::getenv("SLURM_JOB_ID") && std::atoi(nt) != size)
        throw Error("MPI", "world size " + std::to_string(size) + " but SLURM_NTASKS=" + nt +
                               ": MPI was not started through PMIx (use srun --mpi=pmix)");
    }
    spec = sweeps::load_sweep(o.sweep);
    dir = ResultsDir::of(spec->name, o.out).path();
    std::error_code ec;
    if (o.noop_tasks && fs::exists(dir, ec))
      throw Error("--noop-tasks", "needs a new results directory (" + dir + " exists): its tasks would be marked done without data");
    int threads = o.threads >= 0 ? o.threads : spec->threads;
    if (threads <= 0) {
      int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      cpu_set_t set;
      CPU_ZERO(&set);
      if (sched_getaffinity(0, sizeof set, &set) == 0) cores = CPU_COUNT(&set);
      threads = std::max(1, cores / local_size);
    }
    engine = std::make_unique<Engine>(*spec, pick_device(spec->device, local_rank), threads);
    tasks = sweeps::expand(*spec, engine->model());
    if (rank == 0 && engine->device() == "cpu") warn_memory(*spec, tasks, local_size);
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!all_ok(err.empty())) {
    say(err.empty() ? "another rank failed to start (see its message)" : "error: " + err);
    if (rank != 0 && !err.empty()) std::cerr << "vizsweep (rank " << rank << "): error: " << err << "\n";
    MPI_Finalize();
    return kExitUsage;
  }

  // Rank 0 prepares the index; the others wait for its verdict.
  std::unique_ptr<DirLock> lock;
  std::unique_ptr<ResultIndex> index;
  std::vector<int64_t> todo;
  std::map<int64_t, int> attempts;
  char attempt[64] = {0};
  if (rank == 0) {
    try {
      refuse_symlinks(dir);
      fs::create_directories(ResultsDir(dir).shards());
      lock = std::make_unique<DirLock>(dir);
      index = std::make_unique<ResultIndex>(ResultsDir(dir).index(), false, o.journal);
      SweepRecord rec{spec->name, spec->text, sweeps::spec_hash(*spec, tasks), spec->model.builtin() ? spec->model.identity() : spec->model.file,
                      engine->model_hash(), "0.1.0", Engine::torch_version()};
      int64_t sweep_id = index->register_sweep(rec);
      index->add_plan(sweep_id, *spec, tasks, engine->model().classes);
      int abandoned = index->abandon_running();
      int retried = index->retry_failed(spec->max_attempts);
      int invalid = invalidate_unreadable(*index, dir);  // reads every dataset: checksums find damage
      auto rows = index->tasks();
      int64_t already = 0;
      for (size_t i = 0; i < tasks.size(); ++i) {
        const auto& row = rows.at(tasks[i].key);
        attempts[static_cast<int64_t>(i)] = row.attempts;
        if (row.state == TaskState::Pending) todo.push_back(static_cast<int64_t>(i));
        if (row.state == TaskState::Done) ++already;
      }
      std::stable_sort(todo.begin(), todo.end(), [&](int64_t a, int64_t b) { return tasks[a].cost > tasks[b].cost; });
      std::snprintf(attempt, sizeof attempt, "%lld-%d", static_cast<long long>(std::time(nullptr)), static_cast<int>(getpid()));
      const std::string format = (spec->precision != "fp32" ? ", " + spec->precision : std::string()) +
                                 (spec->channels_last ? ", channels_last" : "");
      std::fprintf(stderr, "[vizsweep] %s: %zu tasks, %lld already done, %zu to run on %d rank(s) (%s, %d threads each%s) -> %s\n",
                   spec->name.c_str(), tasks.size(), static_cast<long long>(already), todo.size(), size, engine->device().c_str(),
                   engine->threads(), format.c_str(), dir.c_str());
      if (abandoned || retried || invalid)
        std::fprintf(stderr, "[vizsweep] resuming: %d interrupted, %d failed retried, %d with unreadable data recomputed\n",
                     abandoned, retried, invalid);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  if (!all_ok(err.empty())) {
    say("error: " + err);
    MPI_Finalize();
    return kExitUsage;
  }
  MPI_Bcast(attempt, sizeof attempt, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (rank == 0) std::fflush(stderr);
  const std::string shard_rel = ResultsDir::shard(rank, attempt);

  if (rank == 0) {
    LocalChannel local;
    std::thread worker([&] { worker_loop(*engine, tasks, local, dir, shard_rel, 0, o.noop_tasks); });
    Coordinator c{*index, tasks, size, spec->max_attempts, o.progress_seconds, o.drain_seconds, &local};
    c.queue.assign(todo.begin(), todo.end());
    c.noop = o.noop_tasks;
    c.attempts = attempts;
    auto rows = index->tasks();
    c.total = static_cast<int64_t>(tasks.size());
    for (const auto& t : tasks) {
      const auto& r = rows.at(t.key);
      if (r.state == TaskState::Done) ++c.done;
      if (r.state == TaskState::Failed) ++c.failed;
    }
    try {
      c.loop();
    } catch (const DrainDeadline&) {
      // The tasks still in flight go back to pending (their partial shard groups, if any,
      // are never indexed); the index is consistent before the abort takes the other ranks.
      try {
        index->abandon_running();
      } catch (const std::exception& e) {
        std::cerr << "vizsweep: " << e.what() << " (the next run resets the tasks left running)\n";
      }
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, kExitDrained);
    } catch (const std::exception& e) {
      std::cerr << "\nvizsweep: coordinator error: " << e.what() << "\n";
      MPI_Abort(MPI_COMM_WORLD, kExitInternal);
    }
    worker.join();
    const int64_t left = c.total - c.done - c.failed;
    if (!c.storage_error.empty())
      std::fprintf(stderr, "[vizsweep] stopped: results could not be written (%s)\n", c.storage_error.c_str());
    if (c.compute_seconds > 0)
      std::fprintf(stderr, "[vizsweep] task time on the ranks: %.1f s computing; %.1f s writing shards on the writer threads, "
                           "alongside the compute\n", c.compute_seconds, c.write_seconds);
    std::fprintf(stderr, "[vizsweep] %s: %lld/%lld done, %lld failed%s; index %s, shards %s/\n",
                 c.drained && left > 0 ? "drained" : "finished", static_cast<long long>(c.done), static_cast<long long>(c.total),
                 static_cast<long long>(c.failed), c.drained && left > 0 ? (", " + std::to_string(left) + " left for the next run").c_str() : "",
                 ResultsDir(dir).index().c_str(), ResultsDir(dir).shards().c_str());
    code = !c.storage_error.empty() ? kExitStorage
           : c.drained && left > 0  ? kExitDrained
           : c.failed > 0           ? kExitTasksFailed
                                    : kExitOk;
  } else {
    MpiChannel ch(provided >= MPI_THREAD_SERIALIZED);
    worker_loop(*engine, tasks, ch, dir, shard_rel, rank, o.noop_tasks);
  }
  MPI_Finalize();
  return code;
}

}  // namespace vizsweep::runner
