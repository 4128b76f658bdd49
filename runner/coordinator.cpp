#include "runner/coordinator.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "runner/shard.h"

namespace fs = std::filesystem;

namespace vizsweep::runner {

std::string duration(double s) {
  char buf[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

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

void Coordinator::handle(const json& report) {
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
    if (on_done) {
      const auto more = on_done(idx);
      total += static_cast<int64_t>(more.size());
      // Promoted work goes first (after a drain it stays pending for the next run).
      if (!drained) queue.insert(queue.begin(), more.begin(), more.end());
    }
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

Assignment Coordinator::next(int rank) {
  Assignment a;
  const size_t share = std::max<size_t>(1, queue.size() / (2 * static_cast<size_t>(size)));
  double flops = 0;
  while (!queue.empty() && a.tasks.size() < std::min<size_t>(64, share)) {
    int64_t idx = queue.front();
    double c = noop ? 0.0 : tasks[static_cast<size_t>(idx)].cost;
    if (!a.tasks.empty() && flops + c > kBatchFlops) break;
    flops += c;
    queue.pop_front();
    index.mark_running(tasks[static_cast<size_t>(idx)].key, rank, "");
    a.tasks.push_back(idx);
    if (context) {
      json c = context(idx);
      if (!c.is_null()) a.context.merge_patch(c);
    }
  }
  batched += static_cast<int>(a.tasks.size());
  in_flight += static_cast<int>(a.tasks.size());
  return a;
}

void Coordinator::handle_all(const json& reports) {
  for (const auto& r : reports) handle(r);
}

void Coordinator::maybe_commit(bool force) {
  if (batched == 0) return;
  auto now = Clock::now();
  if (force || batched >= 256 || now - last_commit > std::chrono::milliseconds(250)) {
    index.commit();
    index.begin();
    batched = 0;
    last_commit = now;
  }
}

void Coordinator::progress(bool final) {
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

bool Coordinator::receive_remote() {
  json incoming;
  int from = 0;
  Remote::Message kind = Remote::Message::kReports;
  if (!remote || !remote->poll(incoming, from, kind)) return false;
  if (kind == Remote::Message::kHeld) {
    held.insert(from);
  } else {
    handle_all(incoming);
    if (kind == Remote::Message::kRequest) waiting_remote.insert(from);
  }
  return true;
}

bool Coordinator::receive_local() {
  json reports;
  bool asked = false;
  if (local_stopped || !local->take(reports, asked)) return false;
  handle_all(reports);
  local_waiting = local_waiting || asked;
  return true;
}

std::set<int> Coordinator::hold_writers() {
  std::set<int> asked;
  if (!local_stopped) local->request_hold();
  if (remote)
    for (int r = 1; r < size; ++r)
      if (!stopped.count(r) && remote->hold(r)) asked.insert(r);
  const auto until = Clock::now() + std::chrono::duration<double>(hold_seconds);
  for (;;) {
    // Read before taking the local reports: a writer reports a task, then holds, so what it
    // wrote before it held is among the reports taken below.
    const bool local_held = local_stopped || local->is_held();
    // A rank's kHeld comes after its reports (MPI keeps one sender's messages in order);
    // what was written before a writer held is recorded as done.
    bool busy = false;
    while (receive_remote()) busy = true;
    busy = receive_local() || busy;
    std::set<int> silent;
    for (int r : asked)
      if (!held.count(r)) silent.insert(r);
    if (!local_held) silent.insert(0);
    if (silent.empty() || Clock::now() > until) return silent;
    if (!busy) local->wait(std::chrono::microseconds(200));
  }
}

void Coordinator::loop() {
  index.begin();
  const int others = size - 1;
  while (!(local_stopped && static_cast<int>(stopped.size()) == others)) {
    if (drain_requested && drain_requested() && !drained) {
      drained = true;
      drain_started = Clock::now();
      std::fprintf(stderr, "\n[vizsweep] drain requested: no new tasks; waiting for %d in flight (up to %.0fs)\n", in_flight,
                   drain_seconds);
      queue.clear();  // what is left stays pending in the index for the next run
    }
    if (drained && in_flight > 0 && Clock::now() - drain_started > std::chrono::duration<double>(drain_seconds)) {
      const std::set<int> silent = hold_writers();
      maybe_commit(true);  // what was reported before or during the hold is recorded
      if (in_flight > 0) {
        index.commit();
        std::fprintf(stderr, "[vizsweep] drain deadline passed with %d task(s) in flight: abandoning them\n", in_flight);
        for (int r : silent)
          std::fprintf(stderr, "[vizsweep] rank %d's writer did not stop within %.0fs: if the abort cuts its shard write short, "
                               "`vizsweep verify` names the tasks and the next run recomputes them\n",
                       r, hold_seconds);
        throw DrainDeadline{};
      }
      // The last tasks were written while the writers were asked to hold: the drain ends as
      // usual (the held writers only abandon what would have come after).
    }
    bool busy = receive_remote();
    busy = receive_local() || busy;
    // Hand out work to every rank that asked.
    for (auto it = waiting_remote.begin(); it != waiting_remote.end() && !queue.empty();) {
      remote->assign(*it, next(*it));
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
        remote->stop(r);
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

PreparedRun prepare_run(ResultIndex& index, const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks,
                        const SweepRecord& record, const std::vector<std::string>& classes, const std::string& dir) {
  PreparedRun p;
  int64_t sweep_id = index.register_sweep(record);
  // A search plans its first rung and the rungs earlier runs promoted to; the rest comes as
  // it decides.
  p.search = std::make_shared<SearchRun>(index, spec, tasks, sweep_id);
  std::vector<sweeps::Task> planned;  // copied only when a search leaves some tasks out
  bool all = true;
  for (size_t i = 0; i < tasks.size() && all; ++i) all = p.search->planned(i);
  for (size_t i = 0; i < tasks.size() && !all; ++i)
    if (p.search->planned(i)) planned.push_back(tasks[i]);
  index.add_plan(sweep_id, spec, all ? tasks : planned, classes);
  p.abandoned = index.abandon_running();
  p.retried = index.retry_failed(spec.max_attempts);
  p.invalid = invalidate_unreadable(index, dir);  // reads every dataset: checksums find damage
  index.begin();
  try {
    p.search->catch_up();
    index.commit();
  } catch (...) {
    index.rollback();
    throw;
  }
  auto rows = index.tasks();
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto it = rows.find(tasks[i].key);
    if (it == rows.end()) continue;  // not (yet) in a search's plan
    const auto& row = it->second;
    ++p.planned;
    p.attempts[static_cast<int64_t>(i)] = row.attempts;
    if (row.state == TaskState::Pending) p.todo.push_back(static_cast<int64_t>(i));
    if (row.state == TaskState::Done) ++p.already;
  }
  p.search->shuffle(p.todo);  // a search's trials in random order among those of equal cost
  std::stable_sort(p.todo.begin(), p.todo.end(), [&](int64_t a, int64_t b) { return tasks[a].cost > tasks[b].cost; });
  return p;
}

}  // namespace vizsweep::runner
