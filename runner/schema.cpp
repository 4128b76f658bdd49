#include "runner/schema.h"

#include <cctype>
#include <cmath>
#include <regex>
#include <stdexcept>

#include "kernels/settings.h"
#include "runner/schema_sql.h"
#include "sweeps/technique.h"

namespace vizsweep::runner {

namespace {

std::string sql_literal(const kernels::ParamValue& v) {
  if (std::holds_alternative<double>(v)) return kernels::format_number(std::get<double>(v));
  std::string out = "'";
  for (char ch : std::get<std::string>(v)) out += ch == '\'' ? std::string("''") : std::string(1, ch);
  return out + "'";
}

// A settings column as its declaration says: type, default and range.
std::string column_sql(const kernels::ParamInfo& p) {
  using K = kernels::ParamInfo;
  std::string type = p.kind == K::Int || p.kind == K::Bool ? "INTEGER" : p.kind == K::Real ? "REAL" : "TEXT";
  std::string check;
  if (p.kind == K::Choice) {
    for (const auto& c : p.choices) check += (check.empty() ? "" : ", ") + sql_literal(c);
    check = p.name + " IN (" + check + ")";
  } else if (p.kind == K::Bool) {
    check = p.name + " IN (0, 1)";
  } else if (p.kind == K::Int || p.kind == K::Real) {
    if (std::isfinite(p.lo)) check = p.name + (p.lo_open ? " > " : " >= ") + kernels::format_number(p.lo);
    if (std::isfinite(p.hi))
      check += (check.empty() ? "" : " AND ") + p.name + (p.hi_open ? " < " : " <= ") + kernels::format_number(p.hi);
  }
  return p.name + " " + type + " NOT NULL DEFAULT " + sql_literal(p.default_value) + (check.empty() ? "" : " CHECK (" + check + ")");
}

std::string names(bool (*keep)(const sweeps::SweepTechnique&)) {
  std::string out;
  for (const auto* t : sweeps::techniques())
    if (keep(*t)) out += (out.empty() ? "'" : ", '") + t->name + "'";
  return out;
}

std::string replace_all(std::string s, const std::string& what, const std::string& with) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size())) s.replace(at, what.size(), with);
  return s;
}

// The schema file with its markers filled in.
std::string generate() {
  std::string s = kSchemaSql;
  s = replace_all(s, "/* @techniques */", names([](const sweeps::SweepTechnique&) { return true; }));
  s = replace_all(s, "/* @techniques of images */", names([](const sweeps::SweepTechnique& t) { return t.items == "images"; }));
  s = replace_all(s, "/* @techniques with settings */", names([](const sweeps::SweepTechnique& t) {
                    return t.params != nullptr && !t.settings_table.empty();
                  }));
  std::string out;
  size_t pos = 0;
  static const std::regex declared(R"(^[ \t]*-- @declared (\w+)[ \t]*$)");
  while (pos < s.size()) {
    size_t end = s.find('\n', pos);
    if (end == std::string::npos) end = s.size();
    const std::string line = s.substr(pos, end - pos);
    std::smatch m;
    if (std::regex_match(line, m, declared)) {
      const sweeps::SweepTechnique* owner = nullptr;
      for (const auto* t : sweeps::techniques())
        if (t->params && t->settings_table == m[1].str()) owner = t;
      if (!owner) throw std::logic_error("results_schema.sql: no technique declares the columns of " + m[1].str());
      std::string columns;
      for (const auto& p : *owner->params) columns += ",\n  " + column_sql(p);
      // The line before ends without a comma (the file is valid SQL as it stands): the
      // columns follow it, each after a comma.
      while (!out.empty() && out.back() == '\n') out.pop_back();
      out += columns.substr(0, columns.size());
    } else {
      out += line;
    }
    if (end < s.size()) out += '\n';
    pos = end + 1;
  }
  return out;
}

// Comments out, strings kept: the text SQLite would parse.
std::string without_comments(const std::string& sql) {
  std::string out;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'') {
      const size_t close = sql.find('\'', i + 1);
      const size_t stop = close == std::string::npos ? sql.size() : close + 1;
      out += sql.substr(i, stop - i);
      i = stop - 1;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      i = sql.find('\n', i);
      if (i == std::string::npos) break;
      out += '\n';
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      i = sql.find("*/", i + 2);
      if (i == std::string::npos) break;
      ++i;
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// The statements of a script, split at semicolons outside strings and brackets.
std::vector<std::string> statements(const std::string& script) {
  const std::string sql = without_comments(script);
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == '(') ++depth;
    if (!quoted && c == ')') --depth;
    if (!quoted && depth == 0 && c == ';') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (cur.find_first_not_of(" \t\n") != std::string::npos) out.push_back(cur);
  return out;
}

}  // namespace

const std::string& schema_sql() {
  static const std::string s = generate();
  return s;
}

int schema_major() { return 1; }

std::string schema_version_written() {
  static const std::regex v(R"(\('schema_version', '([0-9]+\.[0-9]+)'\))");
  std::smatch m;
  if (!std::regex_search(schema_sql(), m, v)) throw std::logic_error("results_schema.sql writes no schema_version");
  return m[1].str();
}

std::string normalized_sql(const std::string& sql) {
  // Whitespace runs outside strings to one space.
  std::string flat;
  bool quoted = false, space = false;
  for (char c : without_comments(sql)) {
    if (c == '\'') quoted = !quoted;
    if (!quoted && std::isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !flat.empty()) flat += ' ';
    space = false;
    flat += c;
  }
  flat = std::regex_replace(flat, std::regex(" IF NOT EXISTS ", std::regex::icase), " ");
  // No space next to a bracket or a comma.
  std::string out;
  quoted = false;
  for (size_t i = 0; i < flat.size(); ++i) {
    const char c = flat[i];
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == ' ') {
      const char prev = out.empty() ? ' ' : out.back(), next = i + 1 < flat.size() ? flat[i + 1] : ' ';
      if (prev == '(' || prev == ',' || next == '(' || next == ')' || next == ',') continue;
    }
    out += c;
  }
  return out;
}

std::vector<std::string> table_items(const std::string& create_sql) {
  const std::string s = normalized_sql(create_sql);
  const size_t open = s.find('(');
  std::vector<std::string> items;
  if (open == std::string::npos) return items;
  std::string cur;
  int depth = 0;
  bool quoted = false;
  for (size_t i = open + 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == '(') ++depth;
    if (!quoted && c == ')' && depth-- == 0) break;
    if (!quoted && depth == 0 && c == ',') {
      items.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) items.push_back(cur);
  return items;
}

const std::vector<SchemaObject>& schema_objects() {
  static const std::vector<SchemaObject> objects = [] {
    std::vector<SchemaObject> v;
    static const std::regex create(R"(^\s*CREATE\s+(TABLE|VIEW|INDEX)\s+(IF\s+NOT\s+EXISTS\s+)?(\w+))", std::regex::icase);
    for (const auto& st : statements(schema_sql())) {
      std::smatch m;
      if (!std::regex_search(st, m, create)) continue;
      std::string type = m[1].str();
      for (auto& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string sql = st.substr(st.find_first_not_of(" \t\n"));
      sql = std::regex_replace(sql, std::regex(R"(\s+IF\s+NOT\s+EXISTS)", std::regex::icase), "");
      while (!sql.empty() && std::isspace(static_cast<unsigned char>(sql.back()))) sql.pop_back();
      v.push_back({type, m[3].str(), sql});
    }
    return v;
  }();
  return objects;
}

const std::vector<DerivedColumn>& derived_columns() {
  static const std::vector<DerivedColumn> v = [] {
    std::vector<DerivedColumn> out;
    static const std::regex derived(R"(-- @derived (\w+) = ([^\n]+))");
    static const std::regex table(R"(CREATE TABLE IF NOT EXISTS (\w+) \()");
    const std::string& s = schema_sql();
    for (auto it = std::sregex_iterator(s.begin(), s.end(), derived); it != std::sregex_iterator(); ++it) {
      const std::string before = s.substr(0, static_cast<size_t>(it->position()));
      std::string owner;
      for (auto t = std::sregex_iterator(before.begin(), before.end(), table); t != std::sregex_iterator(); ++t) owner = (*t)[1].str();
      out.push_back({owner, (*it)[1].str(), (*it)[2].str()});
    }
    return out;
  }();
  return v;
}

std::vector<std::string> derived_updates(const std::string& table, const std::string& where) {
  std::vector<std::string> out;
  for (const auto& d : derived_columns())
    if (d.table == table) out.push_back("UPDATE " + d.table + " SET " + d.column + " = " + d.expression + " " + where);
  return out;
}

namespace {
#include "runner/migrations.inc"  // kMigrations: {version, sql} per file of runner/migrations/
}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> v = [] {
    std::vector<Migration> out;
    for (const auto& [version, sql] : kMigrations) {
      std::string text = sql;
      // "@derived TABLE.COLUMN@" stands for that derived column's expression.
      for (const auto& d : derived_columns()) text = replace_all(text, "@derived " + d.table + "." + d.column + "@", d.expression);
      out.push_back({version, text});
    }
    return out;
  }();
  return v;
}

}  // namespace vizsweep::runner
