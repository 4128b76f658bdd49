// Rank 0's coordinator: it hands out tasks (most expensive first, cheap ones batched), records
// every report in the index, retries failed tasks up to max_attempts, commits in batches,
// prints progress, drains on request (time limit, scancel) and stops when no work is left.
// It talks to its own worker through a LocalChannel and to the other ranks through a Remote
// (run.cpp's, over MPI), so it runs and is tested without MPI (tests/runner/test_coordinator.cpp).
#pragma once

#include <unistd.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runner/index.h"
#include "runner/search.h"
#include "runner/worker.h"
#include "sweeps/sweep.h"

namespace vizsweep::runner {

// Thrown by Coordinator::loop when the drain deadline passes with tasks still in flight.
struct DrainDeadline {};

// "42s", "3m05s", "2h10m".
std::string duration(double seconds);

// The other ranks, as the coordinator sees them.
class Remote {
 public:
  virtual ~Remote() = default;
  // What a rank's message is: reports of written tasks, reports with a request for work, or
  // its writer's answer to hold().
  enum class Message { kReports, kRequest, kHeld };
  // A message from a rank, when one is waiting: its reports (none for kHeld), the rank, and
  // what it is.
  virtual bool poll(json& reports, int& rank, Message& kind) = 0;
  virtual void assign(int rank, const Assignment& tasks) = 0;
  virtual void stop(int rank) = 0;
  // Asks the rank's writer to stop writing (see Channel::held); false when the rank cannot
  // answer (its MPI has no thread support for the writer to use).
  virtual bool hold(int rank) = 0;
};

struct Coordinator {
  ResultIndex& index;
  const std::vector<sweeps::Task>& tasks;
  int size;  // ranks, this one included
  int max_attempts;
  double progress_seconds;
  double drain_seconds;
  LocalChannel* local;
  double hold_seconds = 10;  // at a drain deadline, the longest wait for the writers to hold
  Remote* remote = nullptr;                // the other ranks (size > 1)
  std::function<bool()> drain_requested;   // polled: true once a drain signal came
  // Called for each task recorded done (inside the index transaction that records it): the
  // tasks it adds to the index (a search's promotions, runner/search.h), queued first.
  std::function<std::vector<int64_t>(int64_t)> on_done;
  // What a task needs from the index, sent with its assignment (null: nothing; a search
  // trial's exemplars, runner/search.h). Merged over the tasks of an assignment.
  std::function<json(int64_t)> context;
  bool drained = false;
  using Clock = std::chrono::steady_clock;
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
  std::set<int> stopped, held;  // ranks told to stop; ranks whose writers hold
  int batched = 0;
  Clock::time_point last_commit = Clock::now(), last_progress = Clock::now(), started = Clock::now();
  bool tty = isatty(STDERR_FILENO);

  // Records a report: done, failed (retried while attempts are left) or not written (storage).
  void handle(const json& report);
  void handle_all(const json& reports);
  // The next assignment for `rank`, most expensive tasks first (the queue is sorted): one
  // task, or several cheap ones together (up to kBatchFlops of estimated work, 64 tasks, and
  // a fair share of what is left so the last tasks still spread over the ranks).
  static constexpr double kBatchFlops = 2e8;  // about a millisecond of compute
  Assignment next(int rank);
  // One message from another rank, when one is waiting: its reports recorded, a request for
  // work noted, or its writer's kHeld. False when none was waiting.
  bool receive_remote();
  // The local worker's reports and request, when it has any: recorded and noted.
  bool receive_local();
  // Before a drain deadline's abort: asks every writer to stop between two writes and waits
  // (up to hold_seconds) until each has, recording the reports that come in meanwhile.
  // Returns the ranks whose writers did not answer.
  std::set<int> hold_writers();
  // Commits the index transaction every 256 records or 250 ms (always when forced).
  void maybe_commit(bool force);
  void progress(bool final);
  // Runs until every rank has been told to stop; throws DrainDeadline.
  void loop();
};

// What a run starts from, once rank 0 has brought the index up to date with the sweep.
struct PreparedRun {
  std::vector<int64_t> todo;          // pending task indices, most expensive first
  std::map<int64_t, int> attempts;    // attempts so far, by task index
  int64_t already = 0;                // tasks done before this run
  int abandoned = 0, retried = 0, invalid = 0;
  int64_t planned = 0;                // tasks in the index's plan (a search's: the trials promoted so far)
  std::shared_ptr<SearchRun> search;  // decides a search's promotions (runner/search.h)
};

// Registers the sweep and its plan in the index, returns interrupted tasks to pending, retries
// failed ones with attempts left, recomputes done tasks whose data cannot be read, and lists
// what is left to run. Throws vizsweep::Error (another sweep's directory, unreadable index).
PreparedRun prepare_run(ResultIndex& index, const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks,
                        const SweepRecord& record, const std::vector<std::string>& classes, const std::string& dir);

// Resume check: done tasks whose data cannot be opened are recomputed.
int invalidate_unreadable(ResultIndex& index, const std::string& dir);

}  // namespace vizsweep::runner
