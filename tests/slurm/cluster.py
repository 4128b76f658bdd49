"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd from Debian's
packages, run as root in the foreground with every file under a temporary directory and
ports chosen free; always torn down (also when a test fails).

    with SlurmCluster(cpus=4) as c:
        job = c.submit(script_path)          # job id
        c.wait(job, timeout=300)             # final state, e.g. "COMPLETED"
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, cpus=4):
        self.cpus = cpus
        self.procs = []
        self.dir = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="vizsweep_slurm_")
        d = self.dir
        os.chmod(d, 0o755)
        for sub in ("munge", "state", "spool", "log"):
            os.makedirs(os.path.join(d, sub), mode=0o755, exist_ok=True)
        key = os.path.join(d, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.socket = os.path.join(d, "munge", "munge.socket.2")
        self._spawn(["munged", "-F", "--force", "--key-file", key, "--socket", self.socket,
                     "--pid-file", os.path.join(d, "munge", "munged.pid"), "--log-file", os.path.join(d, "log", "munged.log"),
                     "--seed-file", os.path.join(d, "munge", "munged.seed")], "munged")
        for _ in range(100):
            if os.path.exists(self.socket):
                break
            time.sleep(0.05)
        host = socket.gethostname().split(".")[0]
        self.conf = os.path.join(d, "slurm.conf")
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=vizsweeptest
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=pmix
SchedulerParameters=batch_sched_delay=0
MailProg=/bin/true
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self._spawn(["slurmctld", "-D", "-f", self.conf], "slurmctld")
        self._spawn(["slurmd", "-D", "-f", self.conf], "slurmd")
        deadline = time.time() + 60
        while time.time() < deadline:
            r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() in ("idle", "idle*", "mix"):
                return
            time.sleep(0.3)
        raise RuntimeError("slurm cluster did not become idle:\n" + self.logs())

    def _spawn(self, cmd, name):
        log = open(os.path.join(self.dir, "log", name + ".out"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=getattr(self, "env", os.environ),
                             start_new_session=True)
        log.close()  # the child has its own copy
        self.procs.append(p)

    def logs(self):
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log", "slurmctld.out", "slurmd.out", "munged.out"):
            p = os.path.join(self.dir, "log", name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out.append(f"--- {name}\n" + "".join(f.readlines()[-30:]))
        return "\n".join(out)

    def stop(self):
        if getattr(self, "env", None):
            subprocess.run(["scancel", "--full", "--quiet", "-u", "root"], env=self.env, capture_output=True, timeout=30)
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # Job steps started by slurmd live in their own sessions: end any that remain.
        subprocess.run(["pkill", "-9", "-f", "slurmstepd"], capture_output=True)
        self.procs = []
        if self.dir and not os.environ.get("VIZSWEEP_KEEP_SLURM"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, *cmd):
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=120)

    def job(self, job_id):
        """Fields of `scontrol show job` as a dict ({} once the job is gone)."""
        r = self.run("scontrol", "-o", "show", "job", str(job_id))
        if r.returncode != 0:
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", r.stdout))

    def wait(self, job_id, timeout, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.job(job_id).get("JobState", "")
            if st in states:
                return st
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still {self.job(job_id).get('JobState')} after {timeout}s\n" + self.logs())
