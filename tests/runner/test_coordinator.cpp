// The runner's parts without MPI: the shard writer and reader, the worker with its writer
// thread, and the coordinator over the in-process channel (rank 0 alone), driven by a task
// runner that stands in for the engine: retries, the attempt limit, drains, a shard that
// cannot be written, and resuming from what the index and the shards hold.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "kernels/error.h"
#include "runner/coordinator.h"
#include "runner/index.h"
#include "runner/results_dir.h"
#include "runner/shard.h"
#include "runner/worker.h"
#include "sweeps/sweep.h"
#include "tests/runner/tiny_model.h"

namespace fs = std::filesystem;
using namespace vizsweep;
using namespace vizsweep::runner;
using vizsweep::testing::tiny_model;

namespace {

// What a task "computes": a 4x4 gray image per unit whose pixels encode the unit and the key,
// an array, and its actmax_results rows.
json fake_rows(const sweeps::Task& t, TaskData& d, const json& = nullptr) {
  json rows;
  auto& out = rows["actmax_results"] = json::array();
  for (int64_t u : t.items) {
    ImageBlob b{"unit_" + std::to_string(u), 4, 4, 1, std::vector<uint8_t>(16, static_cast<uint8_t>(u * 7 + t.key[0]))};
    d.images.push_back(b);
    out.push_back({{"unit", u}, {"final_activation", 1.5 * static_cast<double>(u)}, {"hf_energy", 0.25}, {"total_variation", 0.1},
                   {"saturation", 0.0}, {"robustness", 0.5}, {"is_argmax", 0},
                   {"dataset", ResultsDir::dataset(t.key, "unit_" + std::to_string(u))}});
  }
  d.floats.push_back({"final_activation", {static_cast<int64_t>(t.items.size())}, std::vector<float>(t.items.size(), 1.5f)});
  d.attributes = {{"technique", t.technique}, {"layer", t.layer}};
  return rows;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    quiet_hdf5();
    dir = vizsweep::testing::fresh_results_dir("vizsweep_coord_");
    spec = sweeps::parse_sweep("model: {builtin: vgg11}\nmax_attempts: 2\nactmax:\n  layers: [conv1_1, fc8]\n  units: 0-3\n"
                               "  units_per_batch: 1\n",
                               "t.yaml", dir.string());
    tasks = sweeps::expand(spec, tiny_model());
    ASSERT_EQ(tasks.size(), 8u);
    open_index();
  }
  void TearDown() override {
    index.reset();
    fs::remove_all(dir);
  }
  void open_index() {
    index = std::make_unique<ResultIndex>(ResultsDir(dir.string()).index(), false);
    SweepRecord rec{"t", spec.text, sweeps::spec_hash(spec, tasks), "builtin", "", "test", "test"};
    prepared = prepare_run(*index, spec, tasks, rec, {}, dir.string());
  }
  // One run of rank 0 alone: its worker thread and the coordinator, as `vizsweep run -np 1`
  // does, with `run` in place of the engine. Returns the coordinator for its counts.
  std::unique_ptr<Coordinator> run(const TaskRunner& runner, std::function<bool()> drain = nullptr,
                                   const std::string& shard = ResultsDir::shard(0, "test")) {
    LocalChannel local;
    std::thread worker([&] { worker_loop(runner, tasks, local, dir.string(), shard, 0, false); });
    auto c = std::make_unique<Coordinator>(
        Coordinator{*index, tasks, 1, spec.max_attempts, 3600.0, 60.0, &local});
    c->drain_requested = std::move(drain);
    c->queue.assign(prepared.todo.begin(), prepared.todo.end());
    c->attempts = prepared.attempts;
    c->total = static_cast<int64_t>(tasks.size());
    c->done = prepared.already;
    c->loop();
    worker.join();
    return c;
  }
  std::map<TaskState, int> states() {
    std::map<TaskState, int> out;
    for (const auto& [k, r] : index->tasks()) ++out[r.state];
    return out;
  }

  fs::path dir;
  sweeps::SweepSpec spec;
  std::vector<sweeps::Task> tasks;
  std::unique_ptr<ResultIndex> index;
  PreparedRun prepared;
};

}  // namespace

TEST(Shard, WhatIsWrittenReadsBackAndDamageIsFound) {
  quiet_hdf5();
  const fs::path dir = fs::temp_directory_path() / ("vizsweep_shard_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "r0.h5").string();
  TaskData d;
  d.attributes = {{"technique", "actmax"}};
  d.images.push_back({"unit_3", 2, 3, 1, {1, 2, 3, 4, 5, 6}});
  d.floats.push_back({"trace", {2, 2}, {0.5f, 1.5f, 2.5f, 3.5f}});
  d.ints.push_back({"units", {1}, {3}});
  {
    ShardWriter w(path);
    w.write("k1", d);
    w.write("k2", d);
    w.write("k1", d);  // a task written again (a retry in the same run) replaces its group
  }
  const std::vector<std::string> datasets = {ResultsDir::dataset("k1", "unit_3"), ResultsDir::dataset("k1", "trace"),
                                             ResultsDir::dataset("k2", "units")};
  auto rep = check_shard(path, datasets, true);
  EXPECT_TRUE(rep.opened) << rep.error;
  EXPECT_EQ(rep.tasks, (std::set<std::string>{"k1", "k2"}));
  EXPECT_TRUE(rep.unreadable.empty());
  // A dataset that is not there is unreadable; so is everything after the file is cut short.
  rep = check_shard(path, {ResultsDir::dataset("k3", "unit_3")}, true);
  EXPECT_EQ(rep.unreadable.size(), 1u);
  fs::resize_file(path, fs::file_size(path) / 2);
  rep = check_shard(path, datasets, true);
  EXPECT_TRUE(!rep.opened || rep.unreadable.size() == datasets.size()) << rep.error;
  // Opening a shard where none can be written names the path.
  try {
    ShardWriter bad((dir / "no" / "such" / "r0.h5").string());
    ADD_FAILURE() << "a shard was opened in a directory that does not exist";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r0.h5"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Shard, MetadataWaitsForTheFlushAndTheCacheStaysBounded) {
  // Between two flushes nothing of a shard's metadata is written out, so its cache grows with
  // what is written: past HDF5's default limit (2 MiB, where it would start writing entries
  // out) over tasks of 300 images each. Once it holds more than the writer's limit after a
  // flush, the file is opened again, which empties it: after every write the cache is within
  // the limit, and everything written reads back.
  quiet_hdf5();
  const fs::path dir = fs::temp_directory_path() / ("vizsweep_shard_cache_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  TaskData d;
  d.attributes = {{"technique", "exemplars"}};
  for (int i = 0; i < 300; ++i) d.images.push_back({"image_" + std::to_string(i), 8, 8, 3, std::vector<uint8_t>(192, static_cast<uint8_t>(i))});
  std::vector<std::string> datasets;
  std::set<std::string> keys;
  const size_t hdf5_default = size_t{2} << 20, limit = size_t{6} << 20;
  size_t most = 0;
  {
    ShardWriter w((dir / "r0.h5").string(), limit);
    for (int t = 0; t < 24; ++t) {
      const std::string key = "task" + std::to_string(t);
      w.write(key, d);
      keys.insert(key);
      for (const auto& im : d.images) datasets.push_back(ResultsDir::dataset(key, im.name));
      EXPECT_LE(w.cache_bytes(), limit) << "after task " << t;
      most = std::max(most, w.cache_bytes());
    }
    EXPECT_GT(most, hdf5_default);  // nothing was evicted (written out) between flushes
    EXPECT_GE(w.reopened(), 1);
  }
  const auto rep = check_shard((dir / "r0.h5").string(), datasets, true);
  ASSERT_TRUE(rep.opened) << rep.error;
  EXPECT_EQ(rep.tasks, keys);
  EXPECT_TRUE(rep.unreadable.empty()) << rep.unreadable.size() << " unreadable";
  fs::remove_all(dir);
}

TEST_F(CoordinatorTest, EveryTaskRunsOnceAndItsRowsAndDataAgree) {
  std::atomic<int> calls{0};
  auto c = run([&](const sweeps::Task& t, TaskData& d, const json&) {
    ++calls;
    return fake_rows(t, d);
  });
  EXPECT_EQ(calls.load(), 8);
  EXPECT_EQ(c->done, 8);
  EXPECT_EQ(c->failed, 0);
  EXPECT_FALSE(c->drained);
  EXPECT_EQ(states()[TaskState::Done], 8);
  // The index names a readable dataset for every unit, and the shard holds what was computed.
  auto locs = index->locations();
  ASSERT_EQ(locs.size(), 8u);
  for (const auto& [key, loc] : locs) {
    EXPECT_EQ(loc.first, ResultsDir::shard(0, "test"));
    EXPECT_EQ(loc.second.size(), 1u);
    auto rep = check_shard((dir / loc.first).string(), loc.second, true);
    EXPECT_TRUE(rep.opened && rep.unreadable.empty()) << key << ": " << rep.error;
  }
  // Resuming finds nothing to do.
  index.reset();
  open_index();
  EXPECT_TRUE(prepared.todo.empty());
  EXPECT_EQ(prepared.already, 8);
  EXPECT_EQ(prepared.invalid, 0);
}

TEST_F(CoordinatorTest, AFailureIsRetriedUntilTheAttemptLimit) {
  // Task 0 fails on its first attempt only; task 1 fails every time (max_attempts: 2).
  std::map<std::string, int> tries;
  std::mutex mu;
  auto c = run([&](const sweeps::Task& t, TaskData& d, const json&) {
    int n;
    {
      std::lock_guard<std::mutex> lk(mu);
      n = ++tries[t.key];
    }
    if (t.key == tasks[1].key || (t.key == tasks[0].key && n == 1)) throw Error("fake", "failed on purpose");
    return fake_rows(t, d);
  });
  EXPECT_EQ(tries[tasks[0].key], 2);
  EXPECT_EQ(tries[tasks[1].key], 2);
  EXPECT_EQ(c->done, 7);
  EXPECT_EQ(c->failed, 1);
  auto rows = index->tasks();
  EXPECT_EQ(rows.at(tasks[0].key).state, TaskState::Done);
  EXPECT_EQ(rows.at(tasks[0].key).attempts, 2);
  EXPECT_EQ(rows.at(tasks[1].key).state, TaskState::Failed);
  EXPECT_EQ(rows.at(tasks[1].key).attempts, 2);
  EXPECT_NE(rows.at(tasks[1].key).error.find("failed on purpose"), std::string::npos);
  // A later run does not retry it: its attempts are spent.
  index.reset();
  open_index();
  EXPECT_EQ(prepared.retried, 0);
  EXPECT_TRUE(prepared.todo.empty());
}

TEST_F(CoordinatorTest, ADrainLeavesTheRestPendingAndTheNextRunFinishesIt) {
  std::atomic<int> calls{0};
  const TaskRunner runner = [&](const sweeps::Task& t, TaskData& d, const json&) {
    ++calls;
    return fake_rows(t, d);
  };
  auto c = run(runner, [&] { return calls.load() >= 2; });
  EXPECT_TRUE(c->drained);
  const auto s = states();
  EXPECT_GE(s.count(TaskState::Done) ? s.at(TaskState::Done) : 0, 2);
  EXPECT_GE(s.count(TaskState::Pending) ? s.at(TaskState::Pending) : 0, 1);
  EXPECT_EQ(s.count(TaskState::Running), 0u);  // in-flight tasks finished before the stop
  const int first = c->done;
  index.reset();
  open_index();
  EXPECT_EQ(static_cast<int>(prepared.todo.size()), 8 - first);
  calls = 0;
  c = run(runner, nullptr, ResultsDir::shard(0, "second"));
  EXPECT_EQ(calls.load(), 8 - first);  // nothing computed twice
  EXPECT_EQ(states()[TaskState::Done], 8);
}

TEST_F(CoordinatorTest, ADrainDeadlineHoldsTheWriterBeforeAbandoningTasksInFlight) {
  // From the third task on, a task computes until released: at the drain (asked once the
  // third starts) it is in flight, and with a deadline of 0 s the coordinator abandons it.
  // Before it gives up, the writer must have stopped between two writes (what lets run.cpp
  // abort every rank without cutting a shard write short): the task finished afterwards is
  // not written, what is indexed reads back, and the next run computes exactly the rest.
  // Cheap tasks go out several to an assignment, so how many of the first two were written
  // before the hold (and how many were still queued for the writer, and abandoned) varies.
  std::atomic<int> calls{0};
  std::atomic<bool> release{false};
  const TaskRunner runner = [&](const sweeps::Task& t, TaskData& d, const json&) {
    if (++calls >= 3)
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return fake_rows(t, d);
  };
  const std::string shard = ResultsDir::shard(0, "deadline");
  LocalChannel local;
  std::thread worker([&] { worker_loop(runner, tasks, local, dir.string(), shard, 0, false); });
  Coordinator c{*index, tasks, 1, spec.max_attempts, 3600.0, 0.0, &local};
  c.drain_requested = [&] { return calls.load() >= 3; };
  c.queue.assign(prepared.todo.begin(), prepared.todo.end());
  c.attempts = prepared.attempts;
  c.total = static_cast<int64_t>(tasks.size());
  bool abandoned = false;
  try {
    c.loop();
  } catch (const DrainDeadline&) {
    abandoned = true;
  }
  ASSERT_TRUE(abandoned);
  EXPECT_TRUE(local.is_held());
  EXPECT_GE(c.in_flight, 1);
  EXPECT_LE(c.done, 2);
  release = true;  // the task in flight finishes now, after the hold: it must not be written
  local.answer({});
  worker.join();
  EXPECT_EQ(index->abandon_running(), c.in_flight);
  const auto s = states();
  EXPECT_EQ(s.count(TaskState::Done) ? s.at(TaskState::Done) : 0, c.done);
  EXPECT_EQ(s.count(TaskState::Running), 0u);
  std::vector<std::string> datasets;
  std::set<std::string> indexed;
  for (const auto& [key, loc] : index->locations()) {
    EXPECT_EQ(loc.first, shard);
    datasets.insert(datasets.end(), loc.second.begin(), loc.second.end());
    indexed.insert(key);
  }
  EXPECT_EQ(static_cast<int64_t>(indexed.size()), c.done);
  const auto rep = check_shard((dir / shard).string(), datasets);
  if (indexed.empty() && !rep.opened) {
    EXPECT_FALSE(fs::exists(dir / shard)) << rep.error;  // nothing was written at all
  } else {
    ASSERT_TRUE(rep.opened) << rep.error;
    EXPECT_TRUE(rep.unreadable.empty());
    EXPECT_EQ(rep.tasks, indexed);  // no group of a task written after the hold
  }
  const int64_t first = c.done;
  index.reset();
  open_index();
  EXPECT_EQ(static_cast<int64_t>(prepared.todo.size()), 8 - first);
  calls = 0;
  run(runner, nullptr, ResultsDir::shard(0, "after"));
  EXPECT_EQ(calls.load(), 8 - first);  // nothing computed twice
  EXPECT_EQ(states()[TaskState::Done], 8);
}

// A writer that finishes every write it has before it notices a hold (the hold comes between
// two writes; with none left to write, it never gets there).
class LateHoldChannel : public LocalChannel {
 public:
  bool hold_requested() override { return false; }
  bool asked_to_hold() { return LocalChannel::hold_requested(); }
};

TEST_F(CoordinatorTest, TasksThatFinishWhileTheWritersAreAskedToHoldEndTheDrainAsUsual) {
  // The drain deadline (0 s) passes with a task in flight, which finishes and is written while
  // the coordinator waits for the writers to hold: nothing is abandoned, the run ends as a
  // drain does (exit 4 in run.cpp), and what came in during the hold is committed. Before the
  // fix the index's transaction was already closed here and the last commit failed ("cannot
  // commit - no transaction is active"), which CI saw once in the faults test.
  std::atomic<int> calls{0};
  LateHoldChannel local;
  const TaskRunner runner = [&](const sweeps::Task& t, TaskData& d, const json&) {
    if (++calls >= 3)
      while (!local.asked_to_hold()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return fake_rows(t, d);
  };
  const std::string shard = ResultsDir::shard(0, "late-hold");
  std::thread worker([&] { worker_loop(runner, tasks, local, dir.string(), shard, 0, false); });
  Coordinator c{*index, tasks, 1, spec.max_attempts, 3600.0, 0.0, &local};
  c.hold_seconds = 2;  // the writer never holds: every report is in long before this
  c.drain_requested = [&] { return calls.load() >= 3; };
  c.queue.assign(prepared.todo.begin(), prepared.todo.end());
  c.attempts = prepared.attempts;
  c.total = static_cast<int64_t>(tasks.size());
  EXPECT_NO_THROW(c.loop());
  worker.join();
  EXPECT_TRUE(c.drained);
  EXPECT_EQ(c.in_flight, 0);
  EXPECT_GE(c.done, 3);  // the task held at the deadline was written, not abandoned
  EXPECT_LT(c.done, 8);  // the drain left work for the next run
  const auto s = states();
  EXPECT_EQ(s.at(TaskState::Done), c.done);
  EXPECT_EQ(s.count(TaskState::Running), 0u);
  EXPECT_EQ(s.at(TaskState::Pending), 8 - c.done);
  // Committed: closing the index rolls back anything that was not, and the next run finds
  // exactly these tasks done.
  const int64_t first = c.done;
  index.reset();
  open_index();
  EXPECT_EQ(prepared.already, first);
  EXPECT_EQ(static_cast<int64_t>(prepared.todo.size()), 8 - first);
}

TEST_F(CoordinatorTest, AShardThatCannotBeWrittenStopsTheRunWithNothingLost) {
  // The shard path is a directory: every write fails; tasks go back to pending, no attempt
  // counted, and the run stops handing out work.
  fs::create_directories(dir / "shards" / "r0-blocked.h5");
  auto c = run(fake_rows, nullptr, ResultsDir::shard(0, "blocked"));
  EXPECT_FALSE(c->storage_error.empty());
  EXPECT_NE(c->storage_error.find("r0-blocked.h5"), std::string::npos) << c->storage_error;
  EXPECT_EQ(c->done, 0);
  for (const auto& [k, r] : index->tasks()) {
    EXPECT_EQ(r.state, TaskState::Pending) << k;
    EXPECT_EQ(r.attempts, 0) << k;
  }
  EXPECT_TRUE(index->locations().empty());
}

TEST_F(CoordinatorTest, DoneTasksWhoseDataIsGoneAreRecomputedOnResume) {
  run(fake_rows);
  ASSERT_EQ(states()[TaskState::Done], 8);
  index.reset();
  fs::remove(dir / ResultsDir::shard(0, "test"));
  open_index();
  EXPECT_EQ(prepared.invalid, 8);
  EXPECT_EQ(prepared.todo.size(), 8u);
  // Most expensive first: fc8's tasks cost more than conv1_1's on the tiny model.
  for (size_t i = 1; i < prepared.todo.size(); ++i)
    EXPECT_GE(tasks[prepared.todo[i - 1]].cost, tasks[prepared.todo[i]].cost);
  EXPECT_EQ(tasks[prepared.todo.front()].layer, "fc8");
  EXPECT_EQ(tasks[prepared.todo.back()].layer, "conv1_1");
  auto c = run(fake_rows, nullptr, ResultsDir::shard(0, "again"));
  EXPECT_EQ(c->done, 8);
  EXPECT_TRUE(index->locations().size() == 8u);
}
