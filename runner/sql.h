// Small helpers over SQLite's C API for the runner's readers and writers of the index that
// are not ResultIndex itself (the finishing step, the search).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "kernels/error.h"

namespace vizsweep::runner {

// A prepared statement that finalizes itself.
struct Query {
  sqlite3* db;
  sqlite3_stmt* st = nullptr;
  Query(sqlite3* d, const char* sql) : db(d) {
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) throw Error("index", std::string("SQL error: ") + sqlite3_errmsg(db));
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query() { sqlite3_finalize(st); }
  bool row() {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) throw Error("index", std::string("SQL error: ") + sqlite3_errmsg(db));
    return false;
  }
  // Runs a statement that returns no rows, then makes it ready for the next bindings.
  void run() {
    while (row()) {
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  Query& bind(int i, int64_t v) { return check(sqlite3_bind_int64(st, i, v)); }
  Query& bind(int i, double v) { return check(sqlite3_bind_double(st, i, v)); }
  Query& bind(int i, const std::string& v) { return check(sqlite3_bind_text(st, i, v.c_str(), -1, SQLITE_TRANSIENT)); }
  Query& bind_null(int i) { return check(sqlite3_bind_null(st, i)); }
  std::string text(int c) const {
    auto p = sqlite3_column_text(st, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  int64_t i64(int c) const { return sqlite3_column_int64(st, c); }
  double f64(int c) const { return sqlite3_column_double(st, c); }
  bool is_null(int c) const { return sqlite3_column_type(st, c) == SQLITE_NULL; }

 private:
  Query& check(int rc) {
    if (rc != SQLITE_OK) throw Error("index", std::string("SQL error: ") + sqlite3_errmsg(db));
    return *this;
  }
};

inline void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw Error("index", "SQL error: " + msg);
  }
}

}  // namespace vizsweep::runner
