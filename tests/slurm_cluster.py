"""A one-node Slurm cluster on this machine (Debian's slurm-wlm + munge), for `make test-slurm`.

Needs root and `apt-get install slurm-wlm munge`. No slurmdbd: sacct has no accounting, so
neurorl reconciles job states from squeue/scontrol and the run logs' heartbeats.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CONF = """ClusterName=neurorl
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=30
NodeName={host} CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def available() -> bool:
    return os.geteuid() == 0 and all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch"))


def _up() -> bool:
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip() in ("idle", "mixed", "allocated")


def start(timeout: float = 60) -> None:
    if _up():
        return
    host = socket.gethostname()
    mem = int(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 * 0.8)
    for folder in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm", "/run/munge",
                   "/var/lib/munge", "/var/log/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    Path("/etc/slurm/slurm.conf").write_text(CONF.format(host=host, cpus=os.cpu_count(), mem=mem))
    key = Path("/etc/munge/munge.key")
    if not key.exists() or key.stat().st_size < 32:
        key.write_bytes(os.urandom(1024))
    for path in ("/etc/munge", "/run/munge", "/var/lib/munge", "/var/log/munge"):
        shutil.chown(path, "munge", "munge") if _has_user("munge") else None
    key.chmod(0o400)
    if _has_user("munge"):
        shutil.chown(key, "munge", "munge")
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        subprocess.run(["runuser", "-u", "munge", "--", "munged"] if _has_user("munge") else ["munged", "--force"],
                       check=True)
    subprocess.run(["slurmctld"], check=True)
    subprocess.run(["slurmd"], check=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _up():
            return
        subprocess.run(["scontrol", "update", f"nodename={host}", "state=resume"], capture_output=True)
        time.sleep(1)
    raise RuntimeError("the one-node Slurm cluster did not come up: see /var/log/slurm/")


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


if __name__ == "__main__":
    start()
    print(subprocess.run(["sinfo"], capture_output=True, text=True).stdout)
