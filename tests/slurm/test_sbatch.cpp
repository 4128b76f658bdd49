// sbatch script generation: golden files (regenerate with VIZSWEEP_UPDATE_GOLDEN=1) and errors.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "kernels/error.h"
#include "runner/slurm.h"

using namespace vizsweep::runner;

namespace {

std::string golden(const std::string& name, const std::string& text) {
  std::string path = std::string(VIZSWEEP_GOLDEN_DIR) + "/" + name;
  if (std::getenv("VIZSWEEP_UPDATE_GOLDEN")) std::ofstream(path) << text;
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

SlurmJob job() {
  SlurmJob j;
  j.name = "vgg16_all_units";
  j.vizsweep = "/opt/vizsweep/bin/vizsweep";
  j.sweep = "/home/ana/sweeps/vgg16_all_units.yaml";
  j.out = "/scratch/ana/results/vgg16_all_units";
  return j;
}

}  // namespace

TEST(Sbatch, GpuJobMatchesGolden) {
  SlurmJob j = job();
  j.nodes = 2;
  j.gpus_per_node = 4;
  j.cpus_per_rank = 8;
  j.time = "04:00:00";
  j.partition = "gpu";
  j.account = "vision";
  j.mem = "256G";
  j.extra_sbatch = "--qos=high; --constraint=a100";
  std::string text = sbatch_script(j);
  EXPECT_EQ(text, golden("gpu.sbatch", text));
  EXPECT_EQ(text, sbatch_script(j));  // pure
  EXPECT_NE(text.find("#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\n"), std::string::npos);
  EXPECT_NE(text.find("srun --mpi=pmix"), std::string::npos);
  EXPECT_NE(text.find("#SBATCH --signal=B:USR1@120"), std::string::npos);
  EXPECT_NE(text.find("scontrol requeue"), std::string::npos);
}

TEST(Sbatch, CpuJobMatchesGolden) {
  SlurmJob j = job();
  j.ranks_per_node = 2;
  j.time = "1";
  j.drain_seconds = 40;
  j.chain_limit = 3;
  std::string text = sbatch_script(j);
  EXPECT_EQ(text, golden("cpu.sbatch", text));
  EXPECT_EQ(text.find("gpu"), std::string::npos);
}

TEST(Sbatch, GresForm) {
  SlurmJob j = job();
  j.gpus_per_node = 8;
  j.gpu_form = "gres";
  EXPECT_NE(sbatch_script(j).find("#SBATCH --gres=gpu:8\n"), std::string::npos);
}

TEST(Sbatch, BadOptionsAreClearErrors) {
  auto fails = [](auto change, const std::string& where) {
    SlurmJob j = job();
    change(j);
    try {
      sbatch_script(j);
      ADD_FAILURE() << "no error for " << where;
    } catch (const vizsweep::Error& e) {
      EXPECT_EQ(e.where(), where) << e.what();
    }
  };
  fails([](SlurmJob& j) { j.time = "four hours"; }, "--time");
  fails([](SlurmJob& j) { j.nodes = 0; }, "--nodes");
  fails([](SlurmJob& j) { j.drain_seconds = 5; }, "--drain-seconds");
  fails([](SlurmJob& j) { j.extra_sbatch = "rm -rf /"; }, "--extra-sbatch");
  fails([](SlurmJob& j) { j.gpu_form = "mig"; }, "--gpu-form");
  fails([](SlurmJob& j) { j.journal = "truncate"; }, "--journal");
}

// Results on NFS, Lustre or GPFS: the run in the job gets the journal mode the user chose.
TEST(Sbatch, JournalModeReachesTheRun) {
  SlurmJob j = job();
  EXPECT_NE(sbatch_script(j).find(" --journal wal "), std::string::npos);
  j.journal = "delete";
  const std::string text = sbatch_script(j);
  EXPECT_NE(text.find("\"$VIZSWEEP\" run \"$SWEEP\" --out \"$OUT\" --drain-seconds 100 --journal delete "), std::string::npos) << text;
}

TEST(Sbatch, PathsAreQuotedForTheShell) {
  SlurmJob j = job();
  j.sweep = "/home/o'brien/my sweeps/a.yaml";
  std::string text = sbatch_script(j);
  EXPECT_NE(text.find("SWEEP='/home/o'\\''brien/my sweeps/a.yaml'"), std::string::npos) << text;
}
