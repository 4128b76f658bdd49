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

// Where a worker's tasks come from and its reports go.
class Channel {
 public:
  virtual ~Channel() = default;
  // Sends the report of the last task (null before the first) and returns the next task
  // index, or -1 when there is no more work.
  virtual int64_t exchange(const json& report) = 0;
};

class MpiChannel : public Channel {
 public:
  int64_t exchange(const json& report) override {
    if (report.is_null()) {
      MPI_Send(nullptr, 0, MPI_BYTE, 0, protocol::kReady, MPI_COMM_WORLD);
    } else {
      std::string s = report.dump();
      MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, 0, protocol::kResult, MPI_COMM_WORLD);
    }
    MPI_Status st;
    int64_t idx = -1;
    MPI_Recv(&idx, 1, MPI_INT64_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    return st.MPI_TAG == protocol::kTask ? idx : -1;
  }
};

// Rank 0's own worker talks to the coordinator through memory, not MPI.
class LocalChannel : public Channel {
 public:
  int64_t exchange(const json& report) override {
    std::unique_lock<std::mutex> lk(mu_);
    report_ = report;
    has_report_ = true;
    waiting_ = true;
    reported_.notify_one();
    cv_.wait(lk, [&] { return answered_; });
    answered_ = false;
    return answer_;
  }
  // Coordinator side.
  bool take_report(json& out) {
    std::lock_guard<std::mutex> lk(mu_);
    if (!has_report_) return false;
    out = std::move(report_);
    has_report_ = false;
    return true;
  }
  bool waiting() {
    std::lock_guard<std::mutex> lk(mu_);
    return waiting_ && !has_report_;
  }
  // Blocks until the worker reports or `timeout` passes: the coordinator's idle wait, so the
  // local worker's next task goes out the moment it asks.
  void wait_report(std::chrono::microseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    reported_.wait_for(lk, timeout, [&] { return has_report_; });
  }
  void answer(int64_t idx) {
    std::lock_guard<std::mutex> lk(mu_);
    answer_ = idx;
    answered_ = true;
    waiting_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_, reported_;
  json report_;
  bool has_report_ = false, waiting_ = false, answered_ = false;
  int64_t answer_ = -1;
};

void worker_loop(Engine& engine, const std::vector<sweeps::Task>& tasks, Channel& ch, const std::string& dir,
                 const std::string& shard_rel, int rank, bool noop) {
  std::unique_ptr<ShardWriter> writer;
  const std::string host = hostname();
  json report;  // null: first exchange
  for (;;) {
    int64_t idx = ch.exchange(report);
    if (idx < 0) break;
    const auto& task = tasks.at(static_cast<size_t>(idx));
    auto t0 = Clock::now();
    report = json{{"task", idx}, {"key", task.key}, {"rank", rank}, {"host", host}};
    if (noop) {  // dispatch, report and commit only: what the runner itself costs per task
      report["ok"] = true;
      continue;
    }
    try {
      TaskData data;
      json rows = engine.run(task, data);
      if (!writer) writer = std::make_unique<ShardWriter>((fs::path(dir) / shard_rel).string());
      writer->write(task.key, data);
      report.update(rows);
      report["ok"] = true;
      report["shard"] = shard_rel;
    } catch (const StorageError& e) {
      report["ok"] = false;
      report["storage"] = true;
      report["error"] = e.what();
      writer.reset();  // a shard that failed a write is not written again by this run
    } catch (const std::exception& e) {
      report["ok"] = false;
      report["error"] = e.what();
    }
    report["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
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
    std::string p = (fs::path(dir) / ".vizsweep.lock").string();
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
  for (const char* name : {"shards", "index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal", ".vizsweep.lock"})
    if (fs::is_symlink(d / name, ec))
      throw Error((d / name).string(), "is a symbolic link; vizsweep writes only inside the results directory (remove the link)");
  if (fs::is_directory(d / "shards", ec))
    for (const auto& e : fs::directory_iterator(d / "shards", ec))
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
  int in_flight = 0;
  int64_t total = 0, done = 0, failed = 0, done_this_run = 0;
  bool local_stopped = false;
  int idle_polls = 0;
  std::set<int> stopped;
  int batched = 0;
  Clock::time_point last_commit = Clock::now(), last_progress = Clock::now(), started = Clock::now();
  bool tty = isatty(STDERR_FILENO);

  void handle(const json& report) {
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
                   sweeps::technique_name(task.technique), task.layer.c_str(), report.value("rank", -1), a, max_attempts,
                   report.value("error", std::string("?")).c_str());
      if (a < max_attempts) {
        transition(TaskState::Failed, TaskEvent::Retry);
        if (!drained) queue.push_back(idx);  // retried after the rest (after a drain: by the next run)
      } else {
        ++failed;
      }
    }
  }

  int64_t next(int rank) {
    int64_t idx = queue.front();
    queue.pop_front();
    index.mark_running(tasks[static_cast<size_t>(idx)].key, rank, "");
    ++batched;
    ++in_flight;
    return idx;
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
        if (st.MPI_TAG == protocol::kResult) handle(json::parse(buf));
        waiting_remote.insert(st.MPI_SOURCE);
      }
      json rep;
      if (!local_stopped && local->take_report(rep)) {
        busy = true;
        if (!rep.is_null()) handle(rep);
      }
      // Hand out work, most expensive first (the queue is sorted).
      for (auto it = waiting_remote.begin(); it != waiting_remote.end() && !queue.empty();) {
        int64_t idx = next(*it);
        MPI_Send(&idx, 1, MPI_INT64_T, *it, protocol::kTask, MPI_COMM_WORLD);
        it = waiting_remote.erase(it);
        busy = true;
      }
      if (!local_stopped && local->waiting() && !queue.empty()) {
        local->answer(next(0));
        busy = true;
      }
      if (queue.empty() && in_flight == 0) {
        maybe_commit(true);  // everything on disk before anyone is told to stop
        for (int r : waiting_remote) {
          int64_t none = -1;
          MPI_Send(&none, 1, MPI_INT64_T, r, protocol::kStop, MPI_COMM_WORLD);
          stopped.insert(r);
        }
        waiting_remote.clear();
        if (!local_stopped && local->waiting()) {
          local->answer(-1);
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
        local->wait_report(std::chrono::microseconds(local_stopped ? 0 : 200));
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

}  // namespace

std::string results_dir(const std::string& sweep_name, const std::string& out) {
  if (!out.empty()) return fs::absolute(out).lexically_normal().string();
  return (fs::absolute("results") / sweep_name).lexically_normal().string();
}

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
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
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
    dir = results_dir(spec->name, o.out);
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
      fs::create_directories(fs::path(dir) / "shards");
      lock = std::make_unique<DirLock>(dir);
      index = std::make_unique<ResultIndex>((fs::path(dir) / "index.sqlite").string(), false, o.journal);
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
      std::fprintf(stderr, "[vizsweep] %s: %zu tasks, %lld already done, %zu to run on %d rank(s) (%s, %d threads each) -> %s\n",
                   spec->name.c_str(), tasks.size(), static_cast<long long>(already), todo.size(), size, engine->device().c_str(),
                   engine->threads(), dir.c_str());
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
  const std::string shard_rel = "shards/r" + std::to_string(rank) + "-" + attempt + ".h5";

  if (rank == 0) {
    LocalChannel local;
    std::thread worker([&] { worker_loop(*engine, tasks, local, dir, shard_rel, 0, o.noop_tasks); });
    Coordinator c{*index, tasks, size, spec->max_attempts, o.progress_seconds, o.drain_seconds, &local};
    c.queue.assign(todo.begin(), todo.end());
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
    std::fprintf(stderr, "[vizsweep] %s: %lld/%lld done, %lld failed%s; index %s/index.sqlite, shards %s/shards/\n",
                 c.drained && left > 0 ? "drained" : "finished", static_cast<long long>(c.done), static_cast<long long>(c.total),
                 static_cast<long long>(c.failed), c.drained && left > 0 ? (", " + std::to_string(left) + " left for the next run").c_str() : "",
                 dir.c_str(), dir.c_str());
    code = !c.storage_error.empty() ? kExitStorage
           : c.drained && left > 0  ? kExitDrained
           : c.failed > 0           ? kExitTasksFailed
                                    : kExitOk;
  } else {
    MpiChannel ch;
    worker_loop(*engine, tasks, ch, dir, shard_rel, rank, o.noop_tasks);
  }
  MPI_Finalize();
  return code;
}

}  // namespace vizsweep::runner
