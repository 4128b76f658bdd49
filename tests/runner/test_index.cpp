// The results index without MPI: every task-state change goes through a guarded statement
// made from the one transition table, and an illegal one is an internal error naming the task.
#include <filesystem>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "kernels/error.h"
#include "runner/index.h"

namespace fs = std::filesystem;
using namespace vizsweep;
using namespace vizsweep::runner;

namespace {

sweeps::ModelDesc tiny_model() {
  sweeps::ModelDesc m;
  m.arch = "vgg11";
  m.in_channels = 1;
  m.num_classes = 10;
  m.input_size = 32;
  m.layers = {{"conv1_1", "features.0", "conv", 8, true, 1e5}, {"relu1_1", "features.1", "relu", 8, true, 1.1e5},
              {"fc8", "classifier.1", "fc", 10, false, 6.1e5}};
  return m;
}

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("vizsweep_index_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                       "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    spec = sweeps::parse_sweep("model: {builtin: vgg11}\nactmax:\n  layers: [conv1_1, fc8]\n  units: 0-3\n", "t.yaml", dir.string());
    tasks = sweeps::expand(spec, tiny_model());
    ASSERT_EQ(tasks.size(), 2u);
    index = std::make_unique<ResultIndex>((dir / "index.sqlite").string(), false);
    int64_t id = index->register_sweep(SweepRecord{"t", spec.text, sweeps::spec_hash(spec, tasks), "builtin", "", "test", "test"});
    index->add_plan(id, spec, tasks, {});
  }
  void TearDown() override {
    index.reset();
    fs::remove_all(dir);
  }
  TaskState state(const std::string& key) { return index->tasks().at(key).state; }
  // The message of the std::logic_error `f` throws, or "" when it throws none.
  template <class F>
  std::string illegal(F f) {
    try {
      f();
    } catch (const std::logic_error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir;
  sweeps::SweepSpec spec;
  std::vector<sweeps::Task> tasks;
  std::unique_ptr<ResultIndex> index;
};

const nlohmann::json kFailed = {{"ok", false}, {"error", "boom"}, {"seconds", 0.5}};
const nlohmann::json kDone = {{"ok", true}, {"seconds", 0.5}, {"rank", 0}, {"host", "h"}, {"shard", "shards/x.h5"}};

}  // namespace

TEST(TaskState, StatementsComeFromTheTable) {
  EXPECT_EQ(transition_sql(TaskState::Pending, TaskEvent::Dispatch, ", rank=?", " AND task_key=?"),
            "UPDATE tasks SET state='running', rank=? WHERE state='pending' AND task_key=?");
  EXPECT_EQ(transition_sql(TaskState::Failed, TaskEvent::Retry, "", ""), "UPDATE tasks SET state='pending' WHERE state='failed'");
  EXPECT_THROW(transition_sql(TaskState::Failed, TaskEvent::Dispatch, "", ""), Error);  // no such edge
}

TEST_F(IndexTest, EveryLegalPathAndTheStatesItLeaves) {
  const std::string k = tasks[0].key;
  EXPECT_EQ(state(k), TaskState::Pending);
  index->mark_running(k, 1, "h");
  EXPECT_EQ(state(k), TaskState::Running);
  index->record(k, kFailed);
  EXPECT_EQ(state(k), TaskState::Failed);
  EXPECT_EQ(index->tasks().at(k).attempts, 1);
  EXPECT_EQ(index->tasks().at(k).error, "boom");
  index->retry(k);  // retried in the same run: back to the queue first
  EXPECT_EQ(state(k), TaskState::Pending);
  index->mark_running(k, 0, "h");
  index->record(k, kDone);
  EXPECT_EQ(state(k), TaskState::Done);
  EXPECT_EQ(index->tasks().at(k).attempts, 2);
  EXPECT_EQ(index->tasks().at(k).error, "");
  index->invalidate({k});  // its data turned out unreadable on resume
  EXPECT_EQ(state(k), TaskState::Pending);
}

TEST_F(IndexTest, IllegalTransitionsAreInternalErrorsNamingTheTask) {
  const std::string k = tasks[0].key;
  index->mark_running(k, 1, "h");
  std::string e = illegal([&] { index->mark_running(k, 1, "h"); });  // dispatched twice
  EXPECT_NE(e.find("task " + k), std::string::npos) << e;
  EXPECT_NE(e.find("'dispatch'"), std::string::npos) << e;
  EXPECT_NE(e.find("it is running"), std::string::npos) << e;
  index->record(k, kFailed);
  // A failed task goes back to pending before it runs again: never failed -> running.
  EXPECT_NE(illegal([&] { index->mark_running(k, 1, "h"); }).find("it is failed"), std::string::npos);
  EXPECT_EQ(state(k), TaskState::Failed);  // nothing changed
  EXPECT_NE(illegal([&] { index->record(k, kDone); }), "");  // a report for a task not running
  EXPECT_EQ(state(k), TaskState::Failed);
  EXPECT_NE(illegal([&] { index->invalidate({k}); }), "");
  EXPECT_NE(illegal([&] { index->release(k); }), "");
  EXPECT_NE(illegal([&] { index->retry(tasks[1].key); }).find("it is pending"), std::string::npos);
  EXPECT_NE(illegal([&] { index->mark_running("nope", 0, "h"); }).find("no such task"), std::string::npos);
}

TEST_F(IndexTest, ResumeResetsRunningAndRetriesFailedWithAttemptsLeft) {
  index->mark_running(tasks[0].key, 0, "h");
  index->mark_running(tasks[1].key, 0, "h");
  index->record(tasks[1].key, kFailed);
  EXPECT_EQ(index->abandon_running(), 1);  // the run died with task 0 in flight
  EXPECT_EQ(state(tasks[0].key), TaskState::Pending);
  EXPECT_EQ(index->retry_failed(1), 0);  // one attempt made, one allowed
  EXPECT_EQ(state(tasks[1].key), TaskState::Failed);
  EXPECT_EQ(index->retry_failed(2), 1);
  EXPECT_EQ(state(tasks[1].key), TaskState::Pending);
}
