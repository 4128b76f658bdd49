#include "kernels/objective_spec.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "kernels/error.h"

namespace vizsweep::kernels {

namespace {

class ExprParser {
 public:
  explicit ExprParser(const std::string& text) : s_(text) {}

  ObjectiveSpec parse() {
    ObjectiveSpec spec;
    spec.terms.clear();
    double sign = 1.0;
    if (accept('-')) sign = -1.0;
    else accept('+');
    for (;;) {
      ObjectiveTerm t = term();
      t.weight *= sign;
      spec.terms.push_back(std::move(t));
      if (accept('+')) sign = 1.0;
      else if (accept('-')) sign = -1.0;
      else break;
    }
    skip();
    if (i_ != s_.size()) fail("expected +, - or the end");
    if (spec.terms.size() > 64) fail("more than 64 terms");
    return spec;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("objective", "at " + std::to_string(i_ + 1) + " of '" + s_ + "': " + what);
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool accept(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  bool number_next() {
    skip();
    return i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == '-' || s_[i_] == '+');
  }
  double number() {
    skip();
    const char* begin = s_.c_str() + i_;
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    if (end == begin || !std::isfinite(v)) fail("expected a number");
    i_ += static_cast<size_t>(end - begin);
    return v;
  }
  int64_t integer() {
    const double v = number();
    if (v != std::floor(v) || v < 0 || v > 1e9) fail("expected a whole number >= 0");
    return static_cast<int64_t>(v);
  }
  std::string word() {
    skip();
    size_t j = i_;
    while (j < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) ++j;
    std::string w = s_.substr(i_, j - i_);
    i_ = j;
    return w;
  }
  void position(ObjectiveTerm& t) {
    if (!accept('@')) return;
    expect('(');
    t.at = true;
    t.y = integer();
    expect(',');
    t.x = integer();
    expect(')');
  }
  ObjectiveTerm term() {
    ObjectiveTerm t;
    if (number_next() && !(s_[i_] == '-' || s_[i_] == '+')) {
      t.weight = number();
      expect('*');
    }
    const size_t at = i_;
    const std::string w = word();
    using K = ObjectiveTerm::Kind;
    if (w == "unit" || w == "centre" || w == "center") {
      t.kind = K::Unit;
      if (w == "unit" && accept('(')) t.channel = integer(), expect(')');
      position(t);
    } else if (w == "channel_mean") {
      t.kind = K::ChannelMean;
      if (accept('(')) t.channel = integer(), expect(')');
    } else if (w == "direction" || w == "direction_mean") {
      t.kind = w == "direction" ? K::Direction : K::DirectionMean;
      expect('(');
      do t.weights.push_back(number());
      while (accept(','));
      expect(')');
      if (t.kind == K::Direction) position(t);
    } else {
      i_ = at;
      fail("expected a term (unit, unit(k), unit@(y, x), channel_mean, channel_mean(k), direction(...), direction_mean(...))");
    }
    return t;
  }

  std::string s_;
  size_t i_ = 0;
};

std::string term_text(const ObjectiveTerm& t) {
  using K = ObjectiveTerm::Kind;
  std::string s = t.kind == K::Unit ? "unit" : t.kind == K::ChannelMean ? "channel_mean" : t.kind == K::Direction ? "direction" : "direction_mean";
  if (t.channel >= 0) s += "(" + std::to_string(t.channel) + ")";
  if (!t.weights.empty()) {
    s += "(";
    for (size_t i = 0; i < t.weights.size(); ++i) s += (i ? "," : "") + format_number(t.weights[i]);
    s += ")";
  }
  if (t.at) s += "@(" + std::to_string(t.y) + "," + std::to_string(t.x) + ")";
  return s;
}

}  // namespace

ObjectiveSpec parse_objective(const std::string& text) { return ExprParser(text).parse(); }

std::string ObjectiveSpec::canonical() const {
  if (terms.size() == 1 && terms[0].weight == 1.0 && terms[0].reads_mapped_unit() && !terms[0].at)
    return terms[0].kind == ObjectiveTerm::Kind::Unit ? "centre" : "channel_mean";
  std::string s;
  for (const auto& t : terms) {
    const double a = std::fabs(t.weight);
    std::string body = (a == 1.0 ? "" : format_number(a) + "*") + term_text(t);
    s += s.empty() ? (t.weight < 0 ? "-" : "") + body : (t.weight < 0 ? " - " : " + ") + body;
  }
  return s;
}

const ObjectiveTerm* ObjectiveSpec::mapped_unit() const {
  for (const auto& t : terms)
    if (t.reads_mapped_unit()) return &t;
  return nullptr;
}

ObjectiveKind ObjectiveSpec::unit_kind() const {
  const ObjectiveTerm* t = mapped_unit();
  return t && t->kind == ObjectiveTerm::Kind::ChannelMean ? ObjectiveKind::ChannelMean : ObjectiveKind::CentreUnit;
}

bool ObjectiveSpec::reads_one_position() const {
  for (const auto& t : terms) {
    if (!t.reads_one_position()) return false;
    if (t.at != terms[0].at || (t.at && (t.y != terms[0].y || t.x != terms[0].x))) return false;
  }
  return true;
}

std::string check_objective(const ObjectiveSpec& spec, int64_t units, int64_t height, int64_t width) {
  for (const auto& t : spec.terms) {
    if (t.channel >= units)
      return "channel " + std::to_string(t.channel) + " out of range (the layer has " + std::to_string(units) + ")";
    if (!t.weights.empty() && static_cast<int64_t>(t.weights.size()) != units)
      return "direction has " + std::to_string(t.weights.size()) + " weights; the layer has " + std::to_string(units) + " channels";
    if (t.at && height == 0) return "a position @(y, x) on a layer without positions (fc)";
    if (t.at && (t.y >= height || t.x >= width))
      return "position (" + std::to_string(t.y) + ", " + std::to_string(t.x) + ") outside the " + std::to_string(height) +
             " x " + std::to_string(width) + " output";
  }
  return "";
}

}  // namespace vizsweep::kernels
