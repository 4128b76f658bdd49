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
#include "runner/coordinator.h"
#include "runner/finish.h"
#include "runner/engine.h"
#include "runner/index.h"
#include "runner/results_dir.h"
#include "runner/search.h"
#include "runner/protocol.h"
#include "runner/shard.h"
#include "runner/task_state.h"
#include "runner/version.h"
#include "runner/worker.h"
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
      for (int tag : {protocol::kTask, protocol::kTaskContext, protocol::kStop})
        if (!flag) MPI_Iprobe(0, tag, MPI_COMM_WORLD, &flag, &st);
      if (flag) break;
      lk.unlock();
      if (polls < 20) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(50));
      lk.lock();
    }
    Assignment a;
    int n = 0;
    if (st.MPI_TAG == protocol::kTaskContext) {
      MPI_Get_count(&st, MPI_BYTE, &n);
      std::string buf(static_cast<size_t>(n), '\0');
      MPI_Recv(buf.data(), n, MPI_BYTE, 0, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      auto j = json::parse(buf);
      a.tasks = j.at("tasks").get<std::vector<int64_t>>();
      a.context = std::move(j.at("context"));
      return a;
    }
    MPI_Get_count(&st, MPI_INT64_T, &n);
    a.tasks.resize(static_cast<size_t>(n));
    MPI_Recv(a.tasks.data(), n, MPI_INT64_T, 0, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (st.MPI_TAG != protocol::kTask) a.tasks.clear();
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
  // Only the writer thread asks; without MPI_THREAD_SERIALIZED it cannot call MPI, and the
  // coordinator does not ask such ranks to hold (it knows: every rank gets the same level).
  bool hold_requested() override {
    std::lock_guard<std::mutex> lk(mu_);
    if (!serialized_) return false;
    int flag = 0;
    MPI_Iprobe(0, protocol::kHold, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (flag) MPI_Recv(nullptr, 0, MPI_BYTE, 0, protocol::kHold, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return flag != 0;
  }
  void held() override {
    std::lock_guard<std::mutex> lk(mu_);
    MPI_Send(nullptr, 0, MPI_BYTE, 0, protocol::kHeld, MPI_COMM_WORLD);
  }

 private:
  bool serialized_;
  std::mutex mu_;
  json held_ = json::array();
};

// The coordinator's side of ranks > 0.
class MpiRemote : public Remote {
 public:
  explicit MpiRemote(bool serialized) : serialized_(serialized) {}
  bool poll(json& reports, int& rank, Message& kind) override {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return false;
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    std::string buf(static_cast<size_t>(n), '\0');
    MPI_Recv(buf.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    reports = st.MPI_TAG == protocol::kHeld ? json::array() : json::parse(buf);
    rank = st.MPI_SOURCE;
    kind = st.MPI_TAG == protocol::kRequest ? Message::kRequest : st.MPI_TAG == protocol::kHeld ? Message::kHeld : Message::kReports;
    return true;
  }
  void assign(int rank, const Assignment& a) override {
    if (a.context.is_null()) {
      MPI_Send(a.tasks.data(), static_cast<int>(a.tasks.size()), MPI_INT64_T, rank, protocol::kTask, MPI_COMM_WORLD);
      return;
    }
    const std::string s = json{{"tasks", a.tasks}, {"context", a.context}}.dump();
    MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, rank, protocol::kTaskContext, MPI_COMM_WORLD);
  }
  void stop(int rank) override { MPI_Send(nullptr, 0, MPI_INT64_T, rank, protocol::kStop, MPI_COMM_WORLD); }
  bool hold(int rank) override {
    if (serialized_) MPI_Send(nullptr, 0, MPI_BYTE, rank, protocol::kHold, MPI_COMM_WORLD);
    return serialized_;
  }

 private:
  bool serialized_;
};

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
    check_search(*spec, tasks, engine->model().layers.back().alias);
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
  PreparedRun prepared;
  char attempt[64] = {0};
  if (rank == 0) {
    try {
      refuse_symlinks(dir);
      fs::create_directories(ResultsDir(dir).shards());
      lock = std::make_unique<DirLock>(dir);
      index = std::make_unique<ResultIndex>(ResultsDir(dir).index(), false, o.journal);
      SweepRecord rec{spec->name, spec->text, sweeps::spec_hash(*spec, tasks), spec->model.builtin() ? spec->model.identity() : spec->model.file,
                      engine->model_hash(), VIZSWEEP_VERSION, Engine::torch_version()};
      prepared = prepare_run(*index, *spec, tasks, rec, engine->model().classes, dir);
      const int64_t already = prepared.already;
      const int abandoned = prepared.abandoned, retried = prepared.retried, invalid = prepared.invalid;
      const auto& todo = prepared.todo;
      std::snprintf(attempt, sizeof attempt, "%lld-%d", static_cast<long long>(std::time(nullptr)), static_cast<int>(getpid()));
      const std::string format = ", " + sweeps::compute_summary(*spec);
      std::fprintf(stderr, "[vizsweep] %s: %lld tasks%s, %lld already done, %zu to run on %d rank(s) (%s, %d threads each%s) -> %s\n",
                   spec->name.c_str(), static_cast<long long>(prepared.planned),
                   static_cast<size_t>(prepared.planned) < tasks.size() ? " planned so far (the search adds the rungs it promotes to)" : "",
                   static_cast<long long>(already), todo.size(), size, engine->device().c_str(), engine->threads(), format.c_str(),
                   dir.c_str());
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
    const TaskRunner run = [&](const sweeps::Task& t, TaskData& d, const json& context) { return engine->run(t, d, context); };
    std::thread worker([&] { worker_loop(run, tasks, local, dir, shard_rel, 0, o.noop_tasks); });
    MpiRemote remote(provided >= MPI_THREAD_SERIALIZED);
    Coordinator c{*index, tasks, size, spec->max_attempts, o.progress_seconds, o.drain_seconds, &local};
    c.remote = &remote;
    c.drain_requested = [] { return g_drain != 0; };
    c.queue.assign(prepared.todo.begin(), prepared.todo.end());
    c.noop = o.noop_tasks;
    c.attempts = prepared.attempts;
    auto rows = index->tasks();
    for (const auto& t : tasks) {
      const auto it = rows.find(t.key);
      if (it == rows.end()) continue;  // not (yet) in a search's plan
      ++c.total;
      if (it->second.state == TaskState::Done) ++c.done;
      if (it->second.state == TaskState::Failed) ++c.failed;
    }
    c.on_done = [search = prepared.search](int64_t i) { return search->on_done(i); };
    c.context = [search = prepared.search](int64_t i) { return search->context(i); };
    try {
      c.loop();
    } catch (const DrainDeadline&) {
      // Every writer has stopped between two writes (Coordinator::hold_writers). The tasks
      // still in flight go back to pending (none of their data is indexed); the index is
      // consistent before the abort takes the other ranks.
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
    // Every rank closes its shard before the finish step reads them: HDF5 locks a file that a
    // writer still holds, so a shard another rank has not yet closed cannot be opened.
    MPI_Barrier(MPI_COMM_WORLD);
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
    std::fputs(prepared.search->summary().c_str(), stderr);
    if (c.storage_error.empty() && !c.drained && c.done == c.total) {
      try {
        finish_mis(*index, *spec, *engine, dir);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[vizsweep] machine interpretability not stored: %s (the next run tries again)\n", e.what());
      }
    }
    code = !c.storage_error.empty() ? kExitStorage
           : c.drained && left > 0  ? kExitDrained
           : c.failed > 0           ? kExitTasksFailed
                                    : kExitOk;
  } else {
    MpiChannel ch(provided >= MPI_THREAD_SERIALIZED);
    worker_loop([&](const sweeps::Task& t, TaskData& d, const json& context) { return engine->run(t, d, context); }, tasks, ch, dir, shard_rel, rank,
                o.noop_tasks);
    MPI_Barrier(MPI_COMM_WORLD);  // this rank's shard is closed (see rank 0's finish step)
  }
  MPI_Finalize();
  return code;
}

}  // namespace vizsweep::runner
