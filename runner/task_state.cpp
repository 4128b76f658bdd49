#include "runner/task_state.h"

#include "kernels/error.h"

namespace vizsweep::runner {

const char* state_name(TaskState s) {
  switch (s) {
    case TaskState::Pending: return "pending";
    case TaskState::Running: return "running";
    case TaskState::Done: return "done";
    case TaskState::Failed: return "failed";
  }
  return "?";
}

TaskState parse_state(const std::string& s) {
  if (s == "pending") return TaskState::Pending;
  if (s == "running") return TaskState::Running;
  if (s == "done") return TaskState::Done;
  if (s == "failed") return TaskState::Failed;
  throw Error("state", "unknown task state '" + s + "'");
}

TaskState transition(TaskState from, TaskEvent e) {
  switch (e) {
    case TaskEvent::Dispatch:
      if (from == TaskState::Pending) return TaskState::Running;
      break;
    case TaskEvent::Succeed:
      if (from == TaskState::Running) return TaskState::Done;
      break;
    case TaskEvent::Fail:
      if (from == TaskState::Running) return TaskState::Failed;
      break;
    case TaskEvent::Retry:
      if (from == TaskState::Failed) return TaskState::Pending;
      break;
    case TaskEvent::Abandon:
      if (from == TaskState::Running) return TaskState::Pending;
      break;
    case TaskEvent::Invalidate:
      if (from == TaskState::Done) return TaskState::Pending;
      break;
  }
  throw Error("task state", std::string("no transition from ") + state_name(from));
}

}  // namespace vizsweep::runner
