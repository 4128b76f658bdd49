// The `objective:` of a sweep file as plain data (no torch: sweeps/ parses and checks it):
// a weighted sum of terms, each read from the mapped layer's output.
//
//   unit                      the mapped unit at the centre (the default; `centre` too)
//   unit@(y, x)               the mapped unit at output position (y, x)
//   channel_mean              the mapped unit's channel, averaged over positions
//   unit(k), unit(k)@(y, x), channel_mean(k)
//                             channel k instead of the mapped unit
//   direction(w0, w1, ...)    the channels weighted by w (one per channel), at the centre;
//                             direction(...)@(y, x) at a position, direction_mean(...) averaged
//   2 * unit - 0.5 * channel_mean, -unit, unit + direction(...)
//                             sums, weights, negation
//
// kernels/optvis/objective.h builds the objective; a term that reads no mapped unit gives
// every unit the same image (list one unit for a pure direction).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/settings.h"

namespace vizsweep::kernels {

struct ObjectiveTerm {
  enum class Kind { Unit, ChannelMean, Direction, DirectionMean };
  double weight = 1.0;
  Kind kind = Kind::Unit;
  int64_t channel = -1;        // Unit, ChannelMean: -1 the mapped unit, else this channel
  std::vector<double> weights; // Direction, DirectionMean: one per channel
  bool at = false;             // Unit, Direction: at (y, x) instead of the centre
  int64_t y = 0, x = 0;
  bool reads_mapped_unit() const { return (kind == Kind::Unit || kind == Kind::ChannelMean) && channel < 0; }
  bool reads_one_position() const { return kind == Kind::Unit || kind == Kind::Direction; }
};

struct ObjectiveSpec {
  std::vector<ObjectiveTerm> terms{ObjectiveTerm{}};  // default: the mapped unit at the centre
  // "centre" and "channel_mean" for the two single-term objectives (the keys of earlier
  // versions); otherwise the normalized expression, e.g. "2*unit@(3,4) - channel_mean(7)".
  std::string canonical() const;
  // The one kind of the two single-term objectives, for code that reads a unit alone (the
  // final activation's argmax, format probes): ChannelMean when the mapped unit's term is
  // a channel mean, else CentreUnit.
  ObjectiveKind unit_kind() const;
  // The mapped unit's term, or nullptr when no term reads it.
  const ObjectiveTerm* mapped_unit() const;
  // Every term reads the same single output position (the receptive-field crop applies).
  bool reads_one_position() const;
  bool is_default() const { return canonical() == "centre"; }
};

// Parses an expression (see above); throws vizsweep::Error naming field "objective" with
// where in the text it stopped, e.g. "at 7: expected a term (unit, channel_mean, ...)".
ObjectiveSpec parse_objective(const std::string& text);

// The checks that need the layer: channels < units, one weight per channel, positions inside
// the output (height, width; 0 for fc layers, where no position may be named; a channel mean
// of an fc unit is the unit). Returns "" or the reason.
std::string check_objective(const ObjectiveSpec& spec, int64_t units, int64_t height, int64_t width);

}  // namespace vizsweep::kernels
