// The results index without MPI: every task-state change goes through a guarded statement
// made from the one transition table, and an illegal one is an internal error naming the task.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "kernels/error.h"
#include "kernels/settings.h"
#include "runner/index.h"
#include "tests/runner/tiny_model.h"
#include "runner/technique.h"
#include "sweeps/technique.h"

namespace fs = std::filesystem;
using namespace vizsweep;
using namespace vizsweep::runner;
using vizsweep::testing::tiny_model;

namespace {

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

// The settings tables' CHECK constraints (results_schema.sql) and the C++ declarations of the
// hyperparameters (kernels/settings.cpp) cannot drift apart: for every declared number, SQLite
// accepts a value exactly when the declaration does, at and just past every bound; for every
// choice, exactly the declared choices; and every declared hyperparameter is a column.
namespace {

struct Db {
  sqlite3* db = nullptr;
  // A new index made from the schema, or the index file at `path` as it is.
  explicit Db(const std::string& path = "") {
    if (sqlite3_open(path.empty() ? ":memory:" : path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite3_open");
    if (path.empty()) exec(schema_sql());
  }
  ~Db() { sqlite3_close(db); }
  std::string error;  // of the last exec that failed
  bool exec(const std::string& sql) {
    char* err = nullptr;
    bool ok = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK;
    if (!ok) error = err ? err : "?";
    sqlite3_free(err);
    return ok;
  }
  std::vector<std::string> columns(const std::string& table) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, ("PRAGMA table_info(" + table + ")").c_str(), -1, &s, nullptr);
    while (sqlite3_step(s) == SQLITE_ROW) out.push_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 1)));
    sqlite3_finalize(s);
    return out;
  }
};

std::string sql_literal(const kernels::ParamValue& v) {
  if (std::holds_alternative<double>(v)) return kernels::format_number(std::get<double>(v));
  return "'" + std::get<std::string>(v) + "'";
}

// Values at and around the declared bounds of p (and inside them).
std::vector<kernels::ParamValue> probes(const kernels::ParamInfo& p) {
  std::vector<kernels::ParamValue> out;
  if (p.kind == kernels::ParamInfo::Choice) {
    for (const auto& c : p.choices) out.push_back(c);
    out.push_back(std::string("no_such_choice"));
    return out;
  }
  if (p.kind == kernels::ParamInfo::Bool) return {0.0, 1.0, 2.0, -1.0};
  const bool integer = p.kind == kernels::ParamInfo::Int;
  auto below = [&](double v) { return integer ? v - 1 : std::nextafter(v, -1e300); };
  auto above = [&](double v) { return integer ? v + 1 : std::nextafter(v, 1e300); };
  for (double b : {p.lo, p.hi})
    if (std::isfinite(b)) out.insert(out.end(), {b, below(b), above(b)});
  out.insert(out.end(), {std::get<double>(p.default_value), -1e9, 1e9, 0.0});
  return out;
}

// `only_added`: compare only the columns declared after schema 1.1. A migrated 1.1 table keeps
// its own columns' CHECKs (SQLite cannot alter them; some are weaker than today's, and
// lr_policy's lacks 'adam'); that is enough, because a results directory holds one sweep and
// its settings rows were written when it was made: a sweep using a newer value has another
// spec hash and is refused there.
void expect_schema_matches(const std::string& table, const std::vector<kernels::ParamInfo>& params,
                           const std::vector<std::pair<std::string, std::string>>& extra, const std::string& path = "",
                           bool only_added = false) {
  Db db(path);
  db.exec("PRAGMA foreign_keys=OFF");
  db.exec("BEGIN");  // every probe is rolled back: a fixture copy stays as it was
  auto cols = db.columns(table);
  for (const auto& p : params)
    EXPECT_NE(std::find(cols.begin(), cols.end(), p.name), cols.end()) << table << " has no column " << p.name;
  int probed = 0;
  for (const auto& p : params) {
    if (p.kind == kernels::ParamInfo::RealList) continue;  // stored as text, checked item by item in C++
    if (only_added && p.always_in_key) continue;
    for (const auto& v : probes(p)) {
      std::string names = "setting_id, name", vals = std::to_string(1000000 + probed) + ", 'probe'";  // ids a fixture does not use
      for (const auto& [n, x] : extra) names += ", " + n, vals += ", " + x;
      for (const auto& q : params) {
        names += ", " + q.name;
        vals += ", " + sql_literal(q.name == p.name ? v : q.default_value);
      }
      bool sql_ok = db.exec("INSERT INTO " + table + " (" + names + ") VALUES (" + vals + ")");
      bool cpp_ok = true;
      if (p.kind == kernels::ParamInfo::Choice) {
        cpp_ok = std::find(p.choices.begin(), p.choices.end(), std::get<std::string>(v)) != p.choices.end();
      } else if (p.kind == kernels::ParamInfo::Bool) {
        double d = std::get<double>(v);
        cpp_ok = d == 0 || d == 1;
      } else {
        cpp_ok = p.in_range(std::get<double>(v));
      }
      EXPECT_EQ(sql_ok, cpp_ok) << table << "." << p.name << " = " << sql_literal(v) << ": the schema "
                                << (sql_ok ? "accepts" : "refuses") << " it, the declaration (range " << p.range_text()
                                << ") " << (cpp_ok ? "accepts" : "refuses") << " it" << (sql_ok ? "" : " (" + db.error + ")");
      ++probed;
    }
  }
  db.exec("ROLLBACK");
  int compared = 0;
  for (const auto& p : params) compared += p.kind != kernels::ParamInfo::RealList && !(only_added && p.always_in_key);
  EXPECT_GE(probed, 3 * compared);  // at least three values (in, at and past a bound, or the choices) each
}

// NOT NULL columns of a settings table that are not hyperparameters (values for the probes).
std::vector<std::pair<std::string, std::string>> settings_extra(const std::string& table) {
  if (table == "actmax_settings") return {{"objective", "'centre'"}};
  if (table == "invert_settings") return {{"lr_steps", "'0.5'"}};
  return {};
}

}  // namespace

// 1.8 -> 1.9: a row with mis is scored mis times its drive (activation_ratio clamped to
// [0, 1], 0 without one); rows without mis, and class units under a judge, keep their score.
TEST_F(IndexTest, Migration1_9ScoresMisTimesTheDrive) {
  const std::string key = tasks[0].key, path = (dir / "index.sqlite").string();
  index.reset();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    // (unit, mis, activation_ratio, judge_prob, robustness, hf_energy, score as 1.8 wrote it)
    const char* rows =
        "INSERT INTO actmax_results (task_key, unit, final_activation, hf_energy, total_variation, saturation, robustness, "
        "is_argmax, shard, dataset, judge_prob, mis, activation_ratio, score) VALUES "
        "(?1, 0, 1, 0.2, 0, 0, 0.5, 0, 's', 'd', NULL, 0.9, 0.1, 0.9), "     // a weakly driven image: 0.09
        "(?1, 1, 1, 0.2, 0, 0, 0.5, 0, 's', 'd', NULL, 0.8, 1.5, 0.8), "     // drives past its top exemplar: 0.8
        "(?1, 2, 1, 0.2, 0, 0, 0.5, 0, 's', 'd', NULL, 1.0, -0.5, 1.0), "    // drives it negative: 0
        "(?1, 3, 1, 0.2, 0, 0, 0.5, 0, 's', 'd', NULL, 0.7, NULL, 0.7), "    // top exemplar not positive: 0
        "(?1, 4, 1, 0.2, 0, 0, 0.5, 0, 's', 'd', NULL, NULL, NULL, 0.4), "   // no exemplars: 0.5 x 0.8
        "(?1, 5, 1, 0.2, 0, 0, 0.5, 0, 's', 'd', 0.6, 0.9, 0.1, 0.6)";       // a judge's probability: 0.6
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, rows, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_bind_text(st, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '1.8' WHERE key = 'schema_version'", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  index = std::make_unique<ResultIndex>(path, false);
  EXPECT_EQ(index->schema_version(), "1.9");
  index.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT unit, score FROM actmax_results ORDER BY unit", -1, &st, nullptr), SQLITE_OK);
  const double want[] = {0.9 * 0.1, 0.8, 0.0, 0.0, 0.5 * (1 - 0.2), 0.6};
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    EXPECT_NEAR(sqlite3_column_double(st, 1), want[sqlite3_column_int(st, 0)], 1e-12) << "unit " << sqlite3_column_int(st, 0);
    ++n;
  }
  sqlite3_finalize(st);
  EXPECT_EQ(n, 6);
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT description FROM metrics WHERE name = 'score'", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_NE(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))).find("times the drive"), std::string::npos);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(SchemaAndDeclarations, SettingsChecksMatchTheDeclaredRanges) {
  int tables = 0;
  for (const auto* t : sweeps::techniques())
    if (t->params) expect_schema_matches(t->settings_table, *t->params, settings_extra(t->settings_table)), ++tables;
  EXPECT_GE(tables, 3);
}

TEST(SchemaAndDeclarations, AnIndexOfSchema1_1MigratesToTheDeclaredColumns) {
  // The settings tables of a 1.1 index (tests/fixtures/small-1.1, written by that version)
  // gain the hyperparameters declared since, generated from their declarations: the same
  // ranges as a new index, and the rows it had read the defaults they ran with. Opening it
  // again changes nothing.
  const fs::path dir = fs::temp_directory_path() / "vizsweep_index_migrate_1_1";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(fs::path(VIZSWEEP_FIXTURES) / "small-1.1" / "index.sqlite", dir / "index.sqlite");
  {
    Db before((dir / "index.sqlite").string());
    auto cols = before.columns("actmax_settings");
    ASSERT_EQ(std::find(cols.begin(), cols.end(), "jitter"), cols.end()) << "the fixture is a 1.1 index";
  }
  {
    ResultIndex index((dir / "index.sqlite").string(), false);
    EXPECT_EQ(index.schema_version(), schema_version_written());
  }
  // Reconciled with the schema (1.8): every column's CHECK is today's, the old columns' too
  // (their tables rebuilt with their rows).
  const std::string path = (dir / "index.sqlite").string();
  for (const auto* t : sweeps::techniques())
    if (t->params) expect_schema_matches(t->settings_table, *t->params, settings_extra(t->settings_table), path);
  Db after(path);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(after.db, "SELECT COUNT(*), SUM(jitter = 0 AND adam_beta1 = 0.9 AND adam_beta2 = 0.999) FROM actmax_settings",
                     -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 3);  // small.yaml: unregularized and a grid of two blur radii
  EXPECT_EQ(sqlite3_column_int(s, 1), sqlite3_column_int(s, 0));
  sqlite3_finalize(s);
  // 1.4: the rows already there get the interpretability score without a judge, and no judge
  // columns; every score in [0, 1].
  sqlite3_prepare_v2(after.db,
                     "SELECT COUNT(*), SUM(judge_prob IS NULL AND judge_class IS NULL), "
                     "SUM(ABS(score - MIN(MAX(robustness, 0), 1) * (1 - hf_energy)) < 1e-12), "
                     "SUM(score >= 0 AND score <= 1), SUM(score > 0) FROM actmax_results",
                     -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  const int rows = sqlite3_column_int(s, 0);
  EXPECT_GT(rows, 0);
  for (int c = 1; c <= 3; ++c) EXPECT_EQ(sqlite3_column_int(s, c), rows) << "column " << c;
  EXPECT_GT(sqlite3_column_int(s, 4), 0) << "some images keep their activation under shifts";
  sqlite3_finalize(s);
  // 1.5: tasks and images rebuilt with every row, their results still theirs, and the new
  // technique admitted where the old CHECK refused it.
  auto count = [&](const char* sql) {
    sqlite3_stmt* q = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(after.db, sql, -1, &q, nullptr), SQLITE_OK) << sql;
    int n = -1;
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return n;
  };
  EXPECT_EQ(count("SELECT COUNT(*) FROM tasks WHERE state = 'done'"), 36);  // small.yaml's tasks, all done
  EXPECT_EQ(count("SELECT COUNT(*) FROM actmax_results r JOIN tasks t USING (task_key)"), rows);
  EXPECT_EQ(count("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('tasks_by_state', 'tasks_by_layer')"), 2);
  EXPECT_EQ(count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'view'"), 8);
  // 1.8: the fgsm rows of 1.1 are iterative FGSM, L-inf: the settings' new columns at their
  // defaults, and the robust flag over them.
  EXPECT_EQ(count("SELECT COUNT(*) FROM fgsm_settings WHERE attack = 'fgsm' AND norm = 'linf' AND restarts = 1"),
            count("SELECT COUNT(*) FROM fgsm_settings"));
  EXPECT_GT(count("SELECT COUNT(*) FROM fgsm_settings"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM robust_images"),
            count("SELECT COUNT(*) FROM (SELECT DISTINCT s.eps, r.image_id FROM fgsm_results r JOIN tasks t USING (task_key) "
                  "JOIN fgsm_settings s ON s.setting_id = t.setting_id WHERE t.state = 'done')"));
  {
    std::vector<std::string> before;
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(after.db, "SELECT sql FROM sqlite_master ORDER BY name", -1, &q, nullptr);
    while (sqlite3_step(q) == SQLITE_ROW) before.push_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0) ? sqlite3_column_text(q, 0) : (const unsigned char*)""));
    sqlite3_finalize(q);
    { ResultIndex again(path, false); }
    std::vector<std::string> now;
    sqlite3_prepare_v2(after.db, "SELECT sql FROM sqlite_master ORDER BY name", -1, &q, nullptr);
    while (sqlite3_step(q) == SQLITE_ROW) now.push_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0) ? sqlite3_column_text(q, 0) : (const unsigned char*)""));
    sqlite3_finalize(q);
    EXPECT_EQ(before, now) << "a reconciled index is rebuilt again";
  }
  EXPECT_EQ(sqlite3_exec(after.db,
                         "INSERT INTO tasks (task_key, sweep_id, technique, layer, units, seed) VALUES ('e', 1, 'exemplars', '*', '0-9', 0)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_NE(sqlite3_exec(after.db, "INSERT INTO tasks (task_key, sweep_id, technique, layer, units, seed) VALUES ('f', 1, 'other', '*', '0', 0)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  fs::remove_all(dir);
}

TEST(SchemaAndDeclarations, TheFuzzerDictionaryNamesEveryHyperparameter) {
  // The fuzzer's dictionary is tests/fuzz/sweep.dict plus declared_words() (run_fuzzer.sh):
  // every key a sweep file may hold, so a hyperparameter is one the fuzzer reaches by more
  // than chance without a line in the hand-written file (brightness has none there).
  const auto words = sweeps::declared_words();
  auto has = [&](const std::string& word) { return std::find(words.begin(), words.end(), word) != words.end(); };
  std::ifstream f(std::string(VIZSWEEP_FIXTURES) + "/../fuzz/sweep.dict");
  ASSERT_TRUE(f) << "tests/fuzz/sweep.dict";
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_EQ(text.str().find("\"brightness:\""), std::string::npos);
  EXPECT_TRUE(has("brightness:"));
  EXPECT_TRUE(has("transform_order:"));
  EXPECT_TRUE(has("actmax:"));
  for (const auto* t : sweeps::techniques()) {
    EXPECT_TRUE(has(t->name + ":")) << "technique " << t->name << " is not a declared word";
    for (const auto& k : t->keys) EXPECT_TRUE(has(k + ":")) << t->name << "." << k << " is not a declared word";
    if (t->params)
      for (const auto& p : *t->params) {
        EXPECT_TRUE(has(p.name + ":")) << p.name << " is not a declared word";
        for (const auto& c : p.choices) EXPECT_TRUE(has(c)) << p.name << " choice " << c << " is not in the dictionary";
      }
  }
  for (const auto& t : kernels::transform_names()) EXPECT_TRUE(has(t)) << t;
}

TEST(Techniques, EachIsRegisteredOnBothSidesWithTablesInTheSchema) {
  // A technique is a file in sweeps/techniques/ and one in runner/techniques/: both lists agree,
  // in the expansion order, and every table a technique names is in results_schema.sql.
  const auto& sweep_side = sweeps::techniques();
  const auto& run_side = run_techniques();
  ASSERT_EQ(sweep_side.size(), run_side.size());
  ASSERT_GE(sweep_side.size(), 4u);
  EXPECT_EQ(sweep_side[0]->name, "actmax");  // the first four keep their order: task order and spec hashes follow it
  EXPECT_EQ(sweep_side[1]->name, "invert");
  EXPECT_EQ(sweep_side[2]->name, "fgsm");
  EXPECT_EQ(sweep_side[3]->name, "featuremaps");
  Db db("");
  db.exec("PRAGMA foreign_keys=OFF");  // rows without a sweep: only the CHECKs are probed
  for (size_t i = 0; i < sweep_side.size(); ++i) {
    const auto* t = sweep_side[i];
    EXPECT_EQ(run_side[i]->name, t->name);
    if (i > 0) EXPECT_LT(sweep_side[i - 1]->order, t->order);
    EXPECT_EQ(sweeps::find_technique(t->name), t);
    EXPECT_TRUE(t->items == "units" || t->items == "images") << t->name << ": items " << t->items;
    if (!t->settings_table.empty()) EXPECT_FALSE(db.columns(t->settings_table).empty()) << t->settings_table;
    // Its name passes the schema's CHECKs on tasks.technique and, for techniques of images,
    // images.technique.
    EXPECT_TRUE(db.exec("INSERT INTO tasks (task_key, sweep_id, technique, layer, units, seed) VALUES ('k" + std::to_string(i) +
                        "', 1, '" + t->name + "', '*', '0', 0)"))
        << t->name << ": " << db.error;
    if (t->items == "images")
      EXPECT_TRUE(db.exec("INSERT INTO images (technique, image_id, source) VALUES ('" + t->name + "', 0, 'x')")) << t->name << ": " << db.error;
    EXPECT_FALSE(run_side[i]->tables.empty()) << t->name << " fills no table";
    for (const auto& table : run_side[i]->tables) {
      auto cols = db.columns(table.name);
      EXPECT_FALSE(cols.empty()) << table.name << " is not in results_schema.sql";
      EXPECT_NE(std::find(cols.begin(), cols.end(), "task_key"), cols.end()) << table.name;
      for (const char* c : {"shard", "dataset"})
        EXPECT_EQ(std::find(cols.begin(), cols.end(), c) != cols.end(), table.in_shard) << table.name << "." << c;
    }
  }
  EXPECT_FALSE(db.exec("INSERT INTO tasks (task_key, sweep_id, technique, layer, units, seed) VALUES ('kx', 1, 'nosuch', '*', '0', 0)"));
  EXPECT_EQ(sweeps::find_technique("nosuch"), nullptr);
  EXPECT_THROW(run_technique("nosuch"), std::logic_error);
}

TEST(SchemaAndDeclarations, ADeclaredRangeIsWhatValidationEnforces) {
  // The percentile clips were checked as [0, 100] in one place and [0, 100) in two: now one
  // declaration (the regularizers' constructors check it too: tests/kernels/test_regularizers.cpp).
  const auto& pct = kernels::param_info(kernels::actmax_params(), "norm_pct");
  EXPECT_TRUE(pct.in_range(0));
  EXPECT_TRUE(pct.in_range(99.5));
  EXPECT_FALSE(pct.in_range(100));
  kernels::ActMaxSettings s;
  s.name = "grid";
  s.norm_pct = 100;
  try {
    kernels::validate(s);
    ADD_FAILURE() << "norm_pct 100 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "norm_pct: setting grid: must be in [0, 100), got 100");
  }
  s.norm_pct = 0;
  s.lr = std::nan("");
  try {
    kernels::validate(s);
    ADD_FAILURE() << "lr NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "lr: setting grid: must be a finite number > 0, got nan");
  }
}
