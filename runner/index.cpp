#include "runner/index.h"

#include <stdexcept>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <cstring>
#include <set>

#include "kernels/error.h"
#include "kernels/settings.h"
#include "runner/schema.h"
#include "runner/technique.h"
#include "sweeps/technique.h"

namespace vizsweep::runner {

// One prepared statement; binds by position (1-based) and steps.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK)
      throw Error("index", std::string("SQL error: ") + sqlite3_errmsg(db) + " in: " + sql);
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, int v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(st_, i, v)); }
  Stmt& bind(int i, const std::string& v) { return check(sqlite3_bind_text(st_, i, v.c_str(), -1, SQLITE_TRANSIENT)); }
  Stmt& bind_null(int i) { return check(sqlite3_bind_null(st_, i)); }
  Stmt& bind(int i, const nlohmann::json& v) {
    if (v.is_null()) return bind_null(i);
    if (v.is_boolean()) return bind(i, int64_t{v.get<bool>()});
    if (v.is_number_integer()) return bind(i, v.get<int64_t>());
    if (v.is_number()) return bind(i, v.get<double>());
    return bind(i, v.is_string() ? v.get<std::string>() : v.dump());
  }
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_reset(st_);  // usable again (statements are cached)
    throw Error("index", "SQL error: " + msg);
  }
  void run() {
    while (step()) {
    }
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  double f64(int c) const { return sqlite3_column_double(st_, c); }
  std::string text(int c) const {
    auto p = sqlite3_column_text(st_, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  bool is_null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) throw Error("index", std::string("SQL bind error: ") + sqlite3_errmsg(db_));
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

namespace {

std::string now_iso() {
  using namespace std::chrono;
  auto t = system_clock::now();
  auto secs = system_clock::to_time_t(t);
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count() % 1000;
  char buf[40];
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

ResultIndex::ResultIndex(const std::string& path, bool read_only, const std::string& journal) : path_(path) {
  std::error_code ec;
  if (read_only && !std::filesystem::exists(path, ec)) throw Error(path, "no index here (run a sweep into this directory first)");
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "cannot open";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path, "cannot open the index: " + msg);
  }
  sqlite3_busy_timeout(db_, 30000);
  try {
    if (!read_only) {
      if (journal != "wal" && journal != "delete") throw Error("--journal", "expected wal or delete");
      exec("PRAGMA journal_mode=" + std::string(journal == "wal" ? "WAL" : "DELETE"));
      exec("PRAGMA synchronous=NORMAL");
      // Apply the schema only to a new index or one of this version.
      bool fresh = true;
      {
        Stmt s(db_, "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='meta'");
        s.step();
        fresh = s.i64(0) == 0;
      }
      if (fresh) exec(schema_sql());
    }
    exec("PRAGMA foreign_keys=ON");
    const std::string v = schema_version();
    int major = std::atoi(v.c_str());
    if (major != schema_major())
      throw Error(path, "index schema version " + v + " differs from this vizsweep's " + std::to_string(schema_major()) +
                            ".x: use a new results directory");
    if (!read_only) migrate(v);
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

namespace {

int minor_of(const std::string& version) { return std::atoi(version.c_str() + version.find('.') + 1); }

bool is_column(const std::string& item) {
  for (const char* c : {"PRIMARY KEY", "CHECK", "UNIQUE", "FOREIGN KEY", "CONSTRAINT"})
    if (item.rfind(c, 0) == 0) return false;
  return true;
}

std::string column_name(const std::string& item) { return item.substr(0, item.find(' ')); }

}  // namespace

// Brings an index of this major version to this schema, in one transaction: the numbered
// migrations after its version (runner/migrations/), each run after the tables, columns, views
// and indexes are reconciled with schema_objects() (a table missing is created; a table whose
// items are the schema's but for columns at its end gets them; any other difference, a CHECK
// say, rebuilds the table with its rows; a view or index that differs is recreated). Nothing
// to do, nothing written; an index newer than this schema is left as it is.
void ResultIndex::migrate(const std::string& version) {
  const std::string target = schema_version_written();
  if (minor_of(version) > minor_of(target)) return;
  std::vector<const Migration*> pending;
  for (const auto& m : migrations())
    if (minor_of(m.version) > minor_of(version)) pending.push_back(&m);
  std::map<std::string, std::string> have;  // name -> its CREATE statement
  {
    Stmt s(db_, "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'");
    while (s.step()) have[s.text(0)] = s.text(1);
  }
  struct Step {
    const SchemaObject* object;
    enum { Create, AddColumns, Rebuild, Recreate } kind;
    std::vector<std::string> columns;  // AddColumns: the column definitions to add
  };
  std::vector<Step> steps;
  for (const auto& o : schema_objects()) {
    auto it = have.find(o.name);
    if (it == have.end()) {
      steps.push_back({&o, Step::Create, {}});
    } else if (o.type != "table") {
      if (normalized_sql(it->second) != normalized_sql(o.sql)) steps.push_back({&o, Step::Recreate, {}});
    } else {
      const auto now = table_items(it->second), want = table_items(o.sql);
      if (now == want) continue;
      bool prefix = now.size() < want.size() && std::equal(now.begin(), now.end(), want.begin());
      for (size_t i = now.size(); prefix && i < want.size(); ++i) prefix = is_column(want[i]);
      steps.push_back({&o, prefix ? Step::AddColumns : Step::Rebuild, prefix ? std::vector<std::string>(want.begin() + now.size(), want.end())
                                                                           : std::vector<std::string>{}});
    }
  }
  if (pending.empty() && steps.empty()) return;
  exec("PRAGMA foreign_keys=OFF");  // a rebuilt table's rows keep their references; checked below
  exec("BEGIN IMMEDIATE");
  try {
    // Views read the tables: dropped first, made again from the schema at the end.
    for (const auto& o : schema_objects())
      if (o.type == "view") exec("DROP VIEW IF EXISTS " + o.name);
    for (const auto& st : steps) {
      const SchemaObject& o = *st.object;
      if (st.kind == Step::AddColumns)
        for (const auto& c : st.columns) exec("ALTER TABLE " + o.name + " ADD COLUMN " + c);
      if (st.kind == Step::Recreate && o.type == "index") exec("DROP INDEX IF EXISTS " + o.name);
      if (st.kind == Step::Rebuild) rebuild_table(o);
    }
    exec(schema_sql());  // what is missing: tables, views, indexes, declared rows
    for (const Migration* m : pending) exec(m->sql);
    if (!pending.empty()) exec("UPDATE meta SET value='" + target + "' WHERE key='schema_version'");
    Stmt fk(db_, "PRAGMA foreign_key_check");
    if (fk.step()) throw Error(path_, "migration to " + target + ": rows of " + fk.text(0) + " lost their row in " + fk.text(2));
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    exec("PRAGMA foreign_keys=ON");
    throw;
  }
  exec("PRAGMA foreign_keys=ON");
}

// A table as the schema defines it, with its rows (SQLite's steps for a change ALTER TABLE
// cannot make: a new table, the rows copied, the old one dropped, the new one renamed). The
// columns both have are copied; a new column takes its default. Rows an old, weaker CHECK let
// in and the schema's refuses keep the table as it was, with the schema's new columns added.
void ResultIndex::rebuild_table(const SchemaObject& o) {
  std::vector<std::string> now;
  {
    Stmt c(db_, "PRAGMA table_info(" + o.name + ")");
    while (c.step()) now.push_back(c.text(1));
  }
  std::string common;
  std::vector<std::string> missing;
  for (const auto& item : table_items(o.sql)) {
    if (!is_column(item)) continue;
    if (std::find(now.begin(), now.end(), column_name(item)) != now.end())
      common += (common.empty() ? "" : ", ") + column_name(item);
    else
      missing.push_back(item);
  }
  const std::string body = o.sql.substr(o.sql.find('('));
  exec("SAVEPOINT rebuild");
  try {
    exec("CREATE TABLE " + o.name + "_rebuilt " + body);
    exec("INSERT INTO " + o.name + "_rebuilt (" + common + ") SELECT " + common + " FROM " + o.name);
    exec("DROP TABLE " + o.name);
    exec("ALTER TABLE " + o.name + "_rebuilt RENAME TO " + o.name);
    exec("RELEASE rebuild");
  } catch (const Error& e) {
    exec("ROLLBACK TO rebuild");
    exec("RELEASE rebuild");
    std::fprintf(stderr, "[vizsweep] index: %s kept as written (%s); its new columns added\n", o.name.c_str(), e.what());
    for (const auto& c : missing) exec("ALTER TABLE " + o.name + " ADD COLUMN " + c);
  }
}

ResultIndex::~ResultIndex() {
  stmts_.clear();  // finalized before the connection closes
  if (db_) sqlite3_close(db_);
}

Stmt& ResultIndex::cached(const std::string& sql) {
  auto& s = stmts_[sql];
  if (!s) s = std::make_unique<Stmt>(db_, sql);
  return *s;
}

void ResultIndex::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw Error(path_, "SQL error: " + msg);
  }
}

std::string ResultIndex::schema_version() const {
  try {
    Stmt s(db_, "SELECT value FROM meta WHERE key='schema_version'");
    if (s.step()) return s.text(0);
  } catch (const Error&) {
  }
  throw Error(path_, "not a vizsweep index (no schema version)");
}

int64_t ResultIndex::register_sweep(const SweepRecord& r) {
  {
    Stmt s(db_, "SELECT sweep_id, name, spec_hash FROM sweeps ORDER BY sweep_id");
    while (s.step()) {
      if (s.text(2) == r.spec_hash) return s.i64(0);
      throw Error(path_, "this results directory holds sweep '" + s.text(1) + "' (spec hash " + s.text(2).substr(0, 12) +
                             "), not this sweep (spec hash " + r.spec_hash.substr(0, 12) +
                             "); use another --out or remove the directory");
    }
  }
  Stmt ins(db_, "INSERT INTO sweeps (name, spec_text, spec_hash, model_path, model_hash, vizsweep_version, torch_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)");
  ins.bind(1, r.name).bind(2, r.spec_text).bind(3, r.spec_hash).bind(4, r.model_path).bind(5, r.model_hash);
  ins.bind(6, r.vizsweep_version).bind(7, r.torch_version).run();
  return sqlite3_last_insert_rowid(db_);
}

namespace {

void insert_settings(sqlite3* db, const std::string& table, int64_t id, const std::string& name,
                     std::vector<std::pair<std::string, kernels::ParamValue>> params) {
  std::string cols = "setting_id, name", qs = "?, ?";
  for (const auto& p : params) cols += ", " + p.first, qs += ", ?";
  // A setting already there (a resumed run) is left as it is; a value its CHECK refuses is an
  // error, never a row silently left out.
  Stmt s(db, "INSERT INTO " + table + " (" + cols + ") VALUES (" + qs + ") ON CONFLICT (setting_id) DO NOTHING");
  s.bind(1, id).bind(2, name);
  int i = 3;
  for (const auto& [k, v] : params) {
    if (std::holds_alternative<double>(v)) s.bind(i++, std::get<double>(v));
    else s.bind(i++, std::get<std::string>(v));
  }
  s.run();
}

}  // namespace

void ResultIndex::add_plan(int64_t sweep_id, const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks,
                           const std::vector<std::string>& classes) {
  begin();
  try {
    Stmt cls(db_, "INSERT OR IGNORE INTO classes (class_id, name) VALUES (?, ?)");
    for (size_t i = 0; i < classes.size(); ++i) cls.bind(1, static_cast<int64_t>(i)).bind(2, classes[i]).run();
    for (const auto& e : spec.sections) {
      const auto settings = e.section->settings_rows();
      for (size_t i = 0; i < settings.rows.size(); ++i)
        insert_settings(db_, settings.table, static_cast<int64_t>(i), settings.rows[i].name, settings.rows[i].params);
    }
    Stmt img(db_, "INSERT OR IGNORE INTO images (technique, image_id, source) VALUES (?, ?, ?)");
    for (const auto& e : spec.sections)
      if (const auto* images = e.section->inputs())
        for (size_t i = 0; i < images->size(); ++i)
          img.bind(1, e.technique->name).bind(2, static_cast<int64_t>(i)).bind(3, (*images)[i].id).run();
    std::vector<const sweeps::Task*> all;
    for (const auto& task : tasks) all.push_back(&task);
    add_tasks(sweep_id, all);
    commit();
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

void ResultIndex::add_tasks(int64_t sweep_id, const std::vector<const sweeps::Task*>& tasks) {
  Stmt& t = cached("INSERT OR IGNORE INTO tasks (task_key, sweep_id, technique, layer, units, setting_id, seed, cost) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  for (const auto* task : tasks) {
    t.bind(1, task->key).bind(2, sweep_id).bind(3, task->technique);
    t.bind(4, task->layer).bind(5, sweeps::format_ranges(task->items));
    if (task->setting >= 0) t.bind(6, int64_t{task->setting});
    else t.bind_null(6);
    t.bind(7, static_cast<int64_t>(task->seed)).bind(8, task->cost).run();
  }
}

std::map<std::string, TaskRow> ResultIndex::tasks() const {
  std::map<std::string, TaskRow> out;
  Stmt s(db_, "SELECT task_key, state, attempts, COALESCE(error, '') FROM tasks");
  while (s.step()) out[s.text(0)] = TaskRow{s.text(0), parse_state(s.text(1)), static_cast<int>(s.i64(2)), s.text(3)};
  return out;
}

std::vector<TaskTiming> ResultIndex::task_timings() const {
  std::vector<TaskTiming> out;
  Stmt s(db_, "SELECT technique, layer, COALESCE(setting_id, -1), cost, state = 'done', COALESCE(seconds, 0), "
              "COALESCE(started_at, ''), COALESCE(finished_at, ''), COALESCE(rank, -1) FROM tasks ORDER BY rowid");
  while (s.step()) {
    TaskTiming t;
    t.technique = s.text(0), t.layer = s.text(1), t.setting = static_cast<int>(s.i64(2)), t.cost = s.f64(3);
    t.done = s.i64(4) != 0, t.seconds = s.f64(5), t.started = s.text(6), t.finished = s.text(7), t.rank = static_cast<int>(s.i64(8));
    out.push_back(std::move(t));
  }
  return out;
}

int ResultIndex::abandon_running() {
  exec(transition_sql(TaskState::Running, TaskEvent::Abandon, ", rank=NULL, started_at=NULL", ""));
  return sqlite3_changes(db_);
}

void ResultIndex::release(const std::string& key) {
  Stmt s(db_, transition_sql(TaskState::Running, TaskEvent::Abandon, ", rank=NULL, started_at=NULL", " AND task_key=?"));
  s.bind(1, key).run();
  moved(key, TaskState::Running, TaskEvent::Abandon);
}

void ResultIndex::invalidate(const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  begin();
  for (const auto* t : run_techniques())
    for (const auto& table : t->tables) {
      Stmt d(db_, "DELETE FROM " + table.name + " WHERE task_key=?");
      for (const auto& k : keys) d.bind(1, k).run();
    }
  Stmt u(db_, transition_sql(TaskState::Done, TaskEvent::Invalidate, ", finished_at=NULL", " AND task_key=?"));
  for (const auto& k : keys) {
    u.bind(1, k).run();
    moved(k, TaskState::Done, TaskEvent::Invalidate);
  }
  commit();
}

int ResultIndex::retry_failed(int max_attempts) {
  Stmt s(db_, transition_sql(TaskState::Failed, TaskEvent::Retry, "", " AND attempts < ?"));
  s.bind(1, int64_t{max_attempts}).run();
  return sqlite3_changes(db_);
}

void ResultIndex::retry(const std::string& key) {
  Stmt& s = cached(transition_sql(TaskState::Failed, TaskEvent::Retry, "", " AND task_key=?"));
  s.bind(1, key).run();
  moved(key, TaskState::Failed, TaskEvent::Retry);
}

void ResultIndex::moved(const std::string& key, TaskState from, TaskEvent e) const {
  if (sqlite3_changes(db_) == 1) return;
  std::string now = "no such task";
  Stmt s(db_, "SELECT state FROM tasks WHERE task_key=?");
  s.bind(1, key);
  if (s.step()) now = "it is " + s.text(0);
  throw std::logic_error("task " + key + ": illegal transition '" + event_name(e) + "': it applies to " + state_name(from) +
                         " tasks and " + now);
}

void ResultIndex::begin() { exec("BEGIN IMMEDIATE"); }
void ResultIndex::commit() { exec("COMMIT"); }
void ResultIndex::rollback() { exec("ROLLBACK"); }

void ResultIndex::mark_running(const std::string& key, int rank, const std::string& host) {
  Stmt& s = cached(transition_sql(TaskState::Pending, TaskEvent::Dispatch, ", rank=?, host=?, started_at=?", " AND task_key=?"));
  s.bind(1, int64_t{rank}).bind(2, host).bind(3, now_iso()).bind(4, key).run();
  moved(key, TaskState::Pending, TaskEvent::Dispatch);
}

void ResultIndex::record(const std::string& key, const nlohmann::json& r) {
  const bool ok = r.value("ok", false);
  if (!ok) {
    Stmt& s = cached(transition_sql(TaskState::Running, TaskEvent::Fail, ", attempts=attempts+1, error=?, finished_at=?, seconds=?",
                                    " AND task_key=?"));
    s.bind(1, r.value("error", std::string("unknown error"))).bind(2, now_iso()).bind(3, r.value("seconds", 0.0)).bind(4, key).run();
    moved(key, TaskState::Running, TaskEvent::Fail);
    return;
  }
  // The state first: a report for a task that is not running changes nothing.
  Stmt& u = cached(transition_sql(TaskState::Running, TaskEvent::Succeed,
                                  ", attempts=attempts+1, error=NULL, finished_at=?, seconds=?, rank=?, host=?", " AND task_key=?"));
  u.bind(1, now_iso()).bind(2, r.value("seconds", 0.0)).bind(3, r.value("rank", int64_t{0}))
      .bind(4, r.value("host", std::string())).bind(5, key).run();
  moved(key, TaskState::Running, TaskEvent::Succeed);
  const std::string shard = r.value("shard", std::string());
  // A task gets here from pending, which never has result rows (invalidate deletes them);
  // OR REPLACE keeps one row per key even so. Rows arrive under their table's name, with the
  // columns the technique's runner side gives (runner/techniques/), the same for every row.
  for (const auto* t : run_techniques())
    for (const auto& table : t->tables) {
      if (!r.contains(table.name) || r.at(table.name).empty()) continue;
      const auto& rows = r.at(table.name);
      std::vector<std::string> columns;
      for (const auto& [column, value] : rows.front().items()) columns.push_back(column);
      std::string sql = "INSERT OR REPLACE INTO " + table.name + " (task_key" + (table.in_shard ? ", shard" : "");
      for (const auto& c : columns) sql += ", " + c;
      sql += ") VALUES (?" + std::string(table.in_shard ? ", ?" : "");
      for (size_t i = 0; i < columns.size(); ++i) sql += ", ?";
      Stmt& s = cached(sql + ")");
      for (const auto& x : rows) {
        if (x.size() != columns.size()) throw std::logic_error("task " + key + ": rows of " + table.name + " differ in their columns");
        int i = 1;
        s.bind(i++, key);
        if (table.in_shard) s.bind(i++, shard);
        for (const auto& c : columns) s.bind(i++, x.at(c));
        s.run();
      }
      for (const auto& sql : derived_updates(table.name, "WHERE task_key = ?")) cached(sql).bind(1, key).run();
    }
}

std::map<std::string, std::pair<std::string, std::vector<std::string>>> ResultIndex::locations() const {
  std::map<std::string, std::pair<std::string, std::vector<std::string>>> out;
  std::string tables;
  for (const auto* t : run_techniques())
    for (const auto& table : t->tables)
      if (table.in_shard) tables += (tables.empty() ? "" : " UNION ALL") + (" SELECT task_key, shard, dataset FROM " + table.name);
  Stmt s(db_, "SELECT r.task_key, r.shard, r.dataset FROM (" + tables + ") r JOIN tasks t ON t.task_key = r.task_key WHERE t.state='done'");
  while (s.step()) {
    auto& e = out[s.text(0)];
    e.first = s.text(1);
    e.second.push_back(s.text(2));
  }
  return out;
}

std::map<std::pair<std::string, std::string>, int64_t> ResultIndex::progress() const {
  std::map<std::pair<std::string, std::string>, int64_t> out;
  Stmt s(db_, "SELECT technique, state, COUNT(*) FROM tasks GROUP BY technique, state");
  while (s.step()) out[{s.text(0), s.text(1)}] = s.i64(2);
  return out;
}

std::vector<std::vector<std::string>> ResultIndex::failures(int limit) const {
  std::vector<std::vector<std::string>> out;
  Stmt s(db_, "SELECT task_key, technique, layer, COALESCE(error, '') FROM tasks WHERE error IS NOT NULL "
              "ORDER BY finished_at DESC LIMIT ?");
  s.bind(1, int64_t{limit});
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3)});
  return out;
}

nlohmann::json ResultIndex::sweep_info() const {
  Stmt s(db_, "SELECT name, spec_hash, model_path, created_at FROM sweeps ORDER BY sweep_id LIMIT 1");
  if (!s.step()) return nullptr;
  return {{"name", s.text(0)}, {"spec_hash", s.text(1)}, {"model_path", s.text(2)}, {"created_at", s.text(3)}};
}

}  // namespace vizsweep::runner
