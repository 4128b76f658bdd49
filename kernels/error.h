// The one error type vizsweep raises at its boundaries.
//
// Every message names what was wrong (a field, a layer, a file path) and why, e.g.
//   layer: no layer "conv6_1" in vgg16 (has conv1_1..conv5_3, fc6..fc8)
// No torch, MPI, HDF5 or SQLite here: every target may include this header.
#pragma once

#include <stdexcept>
#include <string>

namespace vizsweep {

class Error : public std::runtime_error {
 public:
  // `where` is the offending field, path or name; `reason` says what is wrong with it.
  Error(const std::string& where, const std::string& reason)
      : std::runtime_error(where.empty() ? reason : where + ": " + reason), where_(where), reason_(reason) {}
  const std::string& where() const { return where_; }
  // The reason without the "where: " prefix.
  const std::string& reason_only() const { return reason_; }

 private:
  std::string where_;
  std::string reason_;
};

// Raised when an optimization produces NaN or Inf; the runner records it as the task's
// failure reason and the sweep goes on.
class NumericalError : public Error {
 public:
  using Error::Error;
};

// Raised when results cannot be written (disk full, file size limit, read-only directory):
// not the task's fault, so the runner stops the run with the task left to do, not failed.
class StorageError : public Error {
 public:
  using Error::Error;
};

}  // namespace vizsweep
