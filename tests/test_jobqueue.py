"""dask-jobqueue: a real one-node SLURM (../shared/tools/slurm-local.sh) runs the dask workers as batch jobs,
and a small scan is prepared and written through them."""

from __future__ import annotations

import os
import fcntl
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptydask import to_ptyd
from ptydask.errors import ParameterError
from ptydask.parallel.cluster import connect, load_spec, make_cluster
from ptydask.parallel.distributed import to_ptyd_distributed
from ptydask.steps import prepare

sys.path.insert(0, str(Path(__file__).resolve().parent / "mpi"))
from conftest import SHARED  # noqa: E402
from scenario import PREPARE, make_raw, open_raw  # noqa: E402

SLURM_TOOL = SHARED / "tools" / "slurm-local.sh"
LOCK = "/tmp/ptydask-test-slurm.lock"
SLURM_PORTS = (16817, 16818)  # fixed by slurm-local.sh (SlurmctldPort, SlurmdPort)


def _ports_busy() -> list[int]:
    busy = []
    for port in SLURM_PORTS:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def _slurm_answers(env: dict) -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and ("idle" in done.stdout or "mix" in done.stdout)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running SLURM: the one CI started (SLURM_CONF set), else one started here and stopped after.

    Test runs on one machine share slurm-local.sh's fixed ports and munge socket: a lock file makes them
    take turns.
    """
    if os.environ.get("SLURM_CONF") and _slurm_answers(dict(os.environ)):
        yield os.environ["SLURM_CONF"]
        return
    with open(LOCK, "a") as lock:
        deadline = time.time() + 240
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    pytest.skip(f"another test run held {LOCK} (its own SLURM) for 4 min")
                time.sleep(2)
        yield from _own_slurm(tmp_path_factory)


def _own_slurm(tmp_path_factory):
    if not SLURM_TOOL.is_file():
        pytest.skip(f"no {SLURM_TOOL} to start SLURM (set PTYDASK_SHARED)")
    if os.geteuid() != 0 and not shutil.which("slurmctld"):
        pytest.skip("SLURM is not installed and installing it (apt) needs root")
    deadline = time.time() + 90
    while _ports_busy() and time.time() < deadline:  # another test run's SLURM (same fixed ports) may be ending
        time.sleep(3)
    if _ports_busy():
        pytest.skip(f"ports {_ports_busy()} are taken by another SLURM whose SLURM_CONF is unknown here; starting a "
                    "second one would also replace its munge socket")
    state = tmp_path_factory.mktemp("slurm")
    # slurm-local.sh counts CPUs with nproc, which obeys OMP_NUM_THREADS (set to 1 by distributed's LocalCluster)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}
    try:
        done = subprocess.run(["bash", str(SLURM_TOOL), "start", str(state)], capture_output=True, text=True,
                              timeout=900, env=env)
    except subprocess.TimeoutExpired:
        subprocess.run(["bash", str(SLURM_TOOL), "stop", str(state)], timeout=60)
        pytest.skip("SLURM did not start within 15 min")
    if done.returncode != 0 or "SLURM_CONF=" not in done.stdout:
        subprocess.run(["bash", str(SLURM_TOOL), "stop", str(state)], timeout=60)
        logs = "".join(p.read_text()[-500:] for p in sorted(state.glob("*.log")) + sorted(state.glob("*.out")))
        pytest.skip(f"the SLURM daemons cannot run here: {done.stdout.strip()} {done.stderr.strip()[-500:]} {logs}")
    conf = done.stdout.strip().rsplit("SLURM_CONF=", 1)[1].split()[0]
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        subprocess.run(["bash", str(SLURM_TOOL), "stop", str(state)], timeout=60)


def _spec(tmp: Path, jobs: int = 2) -> dict:
    return {"kind": "slurm", "jobs": jobs, "cores": 1, "processes": 1, "memory": "1GB", "walltime": "00:10:00",
            "queue": "debug", "interface": "lo", "python": sys.executable, "log_directory": str(tmp / "logs"),
            "local_directory": str(tmp / "spill"), "job_name": "ptydask-test", "timeout": 120}


def test_specs_are_checked_and_read_from_dask_config_files(tmp_path):
    with pytest.raises(ParameterError, match="'kind' must be one of"):
        load_spec({"kind": "torque"})
    with pytest.raises(ParameterError, match="'jobs' must be"):
        load_spec({"kind": "slurm", "jobs": -1})
    cfg = tmp_path / "jobqueue.yaml"
    cfg.write_text("jobqueue:\n  slurm:\n    cores: 4\n    memory: 8GB\n    job-extra-directives: ['--exclusive']\n"
                   "ptydask:\n  cluster:\n    jobs: 3\n")
    assert load_spec(cfg) == {"cores": 4, "memory": "8GB", "job_extra_directives": ["--exclusive"], "jobs": 3,
                              "kind": "slurm"}
    pytest.importorskip("dask_jobqueue")
    cluster = make_cluster({**_spec(tmp_path), "account": "proj"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p debug", "#SBATCH -A proj", "#SBATCH -t 00:10:00", "--interface lo", sys.executable):
        assert line in script, (line, script)
    with pytest.raises(ParameterError, match="did you mean 'walltime'"):
        make_cluster({"kind": "slurm", "wallime": "1:00:00"})


def test_prepare_and_write_through_slurm_jobs(slurm, tmp_path):
    pytest.importorskip("dask_jobqueue")
    raw = make_raw(tmp_path / "raw.h5")
    scan = open_raw(raw)
    ref_prepared = prepare(scan, **PREPARE)
    ref = to_ptyd(ref_prepared, tmp_path / "ref.ptyd", save="link", progress=False)
    cpus = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=30).stdout.split()
    n_jobs = min(2, int(cpus[0].rstrip("+")))  # one core per job
    t0 = time.time()
    client = connect(_spec(tmp_path, n_jobs))
    try:
        jobs = subprocess.run(["squeue", "-h", "-n", "ptydask-test", "-o", "%i %T"], capture_output=True, text=True,
                              timeout=30).stdout.split("\n")
        assert sum("RUNNING" in j for j in jobs) == n_jobs, jobs
        worker_pids = set(client.run(os.getpid).values())
        assert len(worker_pids) == n_jobs and os.getpid() not in worker_pids
        with client.as_current():
            prepared = prepare(scan, **PREPARE)
            out = to_ptyd_distributed(prepared, tmp_path / "slurm.ptyd", client, save="link")
            appended = to_ptyd_distributed(prepared, tmp_path / "slurm-append.ptyd", client, save="append")
    finally:
        client.close()
        client.cluster.close()
    print(f"SLURM round trip {time.time() - t0:.1f} s")
    assert prepared.attrs["info"]["center"] == ref_prepared.attrs["info"]["center"]
    with h5py.File(out, "r") as a, h5py.File(ref, "r") as b, h5py.File(appended, "r") as c:
        assert sorted(a["chunks"]) == sorted(b["chunks"]) == sorted(c["chunks"])
        for name in b["chunks"]:
            for ds in ("data", "weights", "positions", "indices"):
                np.testing.assert_array_equal(a["chunks"][name][ds][()], b["chunks"][name][ds][()])
                np.testing.assert_array_equal(c["chunks"][name][ds][()], b["chunks"][name][ds][()])
    deadline = time.time() + 30
    while time.time() < deadline:  # closing the cluster cancels the jobs
        left = subprocess.run(["squeue", "-h", "-n", "ptydask-test"], capture_output=True, text=True).stdout.strip()
        if not left:
            break
        time.sleep(1)
    assert not left, left
