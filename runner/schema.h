// The index's schema, written from the declarations: results_schema.sql with its markers
// filled in (each technique's hyperparameter columns from kernels/settings.cpp, the technique
// lists from sweeps/techniques/), its objects one by one for reconciling an existing index
// with it, the derived columns, and the numbered migrations (runner/migrations/).
#pragma once

#include <string>
#include <vector>

namespace vizsweep::runner {

// The schema text compiled into the binary, markers filled in, and its major version.
const std::string& schema_sql();
int schema_major();
// The version this schema writes into meta (its INSERT of schema_version).
std::string schema_version_written();

// One CREATE statement of the schema.
struct SchemaObject {
  std::string type;  // "table", "view" or "index"
  std::string name;
  std::string sql;   // the statement, without IF NOT EXISTS and the final ';'
};
const std::vector<SchemaObject>& schema_objects();

// A statement's text for comparison: comments dropped, IF NOT EXISTS dropped, whitespace
// collapsed (none next to brackets and commas).
std::string normalized_sql(const std::string& sql);
// The items of a CREATE TABLE statement's body (columns, then table constraints), normalized.
std::vector<std::string> table_items(const std::string& create_sql);

// A column whose value the index computes from the row's others ("-- @derived COLUMN = EXPR"
// above it in the schema): set for a task's rows after they are inserted, and again when a
// column it reads changes (the machine interpretability at the end of a run).
struct DerivedColumn {
  std::string table, column, expression;
};
const std::vector<DerivedColumn>& derived_columns();
// "UPDATE TABLE SET COLUMN = EXPR" for each derived column of `table` (empty when none),
// followed by `where`.
std::vector<std::string> derived_updates(const std::string& table, const std::string& where);

// The steps from one minor version to the next, in order: the version reached and the
// statements run after the index's tables and views are reconciled with this schema (data
// the schema cannot say, such as a new column's value for old rows).
struct Migration {
  std::string version;
  std::string sql;
};
const std::vector<Migration>& migrations();

}  // namespace vizsweep::runner
