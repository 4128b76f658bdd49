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

const char* event_name(TaskEvent e) {
  switch (e) {
    case TaskEvent::Dispatch: return "dispatch";
    case TaskEvent::Succeed: return "succeed";
    case TaskEvent::Fail: return "fail";
    case TaskEvent::Retry: return "retry";
    case TaskEvent::Abandon: return "abandon";
    case TaskEvent::Invalidate: return "invalidate";
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
  throw Error("task state", std::string("no transition '") + event_name(e) + "' from " + state_name(from));
}

std::string transition_sql(TaskState from, TaskEvent e, const std::string& set, const std::string& where) {
  return std::string("UPDATE tasks SET state='") + state_name(transition(from, e)) + "'" + set + " WHERE state='" +
         state_name(from) + "'" + where;
}

}  // namespace vizsweep::runner
