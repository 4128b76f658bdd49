// What a SIGKILL in the middle of a shard write costs: each trial forks a writer that writes
// three groups of 600 images to a new shard, then groups of 2,000 images until the parent
// kills it at a random moment (0-1.5 s in); the parent then reads the first three groups
// back in full. Trials alternate between the runner's shard writer (metadata held until each
// flush) and the same writer on HDF5's default metadata cache; printed: how many kills left
// the earlier groups unreadable, for each.
//   vizsweep-bench-shard-kill [TRIALS per writer, default 50] [DIR, default /tmp]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "runner/results_dir.h"
#include "runner/shard.h"

using namespace vizsweep::runner;

namespace {

TaskData images(int n, int value) {
  TaskData d;
  d.attributes = {{"technique", "exemplars"}};
  for (int i = 0; i < n; ++i)
    d.images.push_back({"image_" + std::to_string(i), 32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, static_cast<uint8_t>(value))});
  return d;
}

[[noreturn]] void writer(const std::string& path, bool hold, int ready_fd) {
  ShardWriter w(path, size_t{64} << 20, hold);
  for (int k = 0; k < 3; ++k) w.write("early" + std::to_string(k), images(600, k));
  const char one = 1;
  if (::write(ready_fd, &one, 1) != 1) std::_Exit(3);
  const TaskData big = images(2000, 9);
  for (int k = 0;; ++k) w.write("late" + std::to_string(k), big);
}

// Kills one writer mid-way; true when the early groups read back in full.
bool trial(const std::string& path, bool hold, std::mt19937& rng) {
  std::filesystem::remove(path);
  int fds[2];
  if (pipe(fds) != 0) std::exit(1);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    writer(path, hold, fds[1]);
  }
  close(fds[1]);
  char c = 0;
  if (read(fds[0], &c, 1) != 1) {
    std::fprintf(stderr, "the writer failed before its early groups were written\n");
    std::exit(1);
  }
  close(fds[0]);
  std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 1500000)(rng)));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::vector<std::string> datasets;
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 600; ++i) datasets.push_back(ResultsDir::dataset("early" + std::to_string(k), "image_" + std::to_string(i)));
  const auto rep = check_shard(path, datasets, true);
  return rep.opened && rep.unreadable.empty();
}

}  // namespace

int main(int argc, char** argv) {
  const int trials = argc > 1 ? std::atoi(argv[1]) : 50;
  const std::string dir = argc > 2 ? argv[2] : "/tmp";
  if (trials < 1) {
    std::fprintf(stderr, "usage: vizsweep-bench-shard-kill [TRIALS >= 1] [DIR]\n");
    return 2;
  }
  quiet_hdf5();
  const std::string path = (std::filesystem::path(dir) / ("vizsweep_shard_kill_" + std::to_string(getpid()) + ".h5")).string();
  std::mt19937 rng(20261203);
  int lost[2] = {0, 0};
  for (int t = 0; t < trials; ++t)
    for (int hold = 0; hold < 2; ++hold)
      if (!trial(path, hold == 1, rng)) ++lost[hold];
  std::filesystem::remove(path);
  std::printf("shard kill: %d SIGKILLs during 2,000-image group writes per writer; earlier groups lost: "
              "%d with the runner's writer (metadata held until each flush), %d with HDF5's default cache\n",
              trials, lost[1], lost[0]);
  return 0;
}
