// Compact lists of layer names for error messages, e.g. "conv1_1..conv5_3, fc6..fc8".
// Header-only and torch-free: kernels and sweeps both use it.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace vizsweep {

// Groups aliases by their prefix before the first digit ("conv", "relu", "fc") in order of
// first appearance, and shows each group as "first..last" (or the one name).
inline std::string summarize_layer_names(const std::vector<std::string>& aliases) {
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  for (const auto& a : aliases) {
    std::string prefix = a.substr(0, a.find_first_of("0123456789"));
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == prefix; });
    if (it == groups.end()) groups.push_back({prefix, {a}});
    else it->second.push_back(a);
  }
  std::string out;
  for (const auto& g : groups)
    out += (out.empty() ? "" : ", ") + (g.second.size() == 1 ? g.second[0] : g.second.front() + ".." + g.second.back());
  return out;
}

}  // namespace vizsweep
