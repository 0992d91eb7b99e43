"""Dask clusters from a small specification: a local cluster or batch jobs through dask-jobqueue.

A specification is a dict (or a YAML/JSON file holding one)::

    kind: slurm            # local | slurm | pbs | sge | lsf | htcondor | moab | oar
    jobs: 4                # batch jobs to submit (local: worker processes)
    cores: 8               # cores per job (threads per worker process = cores / processes)
    processes: 2           # worker processes per job
    memory: 32GB           # memory per job (workers are limited to memory / processes)
    walltime: "01:00:00"   # job time limit
    queue: batch           # partition / queue
    account: myproject
    interface: ib0         # network interface of workers and scheduler ("lo" on one node)
    python: /path/to/venv/bin/python      # the workers' Python (default: this one)
    job_script_prologue: ["module load hdf5"]
    job_extra_directives: ["--exclusive"]
    local_directory: /scratch/$USER       # worker spill directory
    log_directory: dask-logs

Any other key is passed on to the dask-jobqueue cluster class (``SLURMCluster``
etc., see its documentation). A file may instead be a *Dask configuration
file*: its ``jobqueue: {<kind>: {...}}`` section (the keys of dask-jobqueue's
own ``jobqueue.yaml``, hyphens or underscores) gives the job parameters and an
optional ``ptydask: {cluster: {kind: ..., jobs: ...}}`` section the kind and
number of jobs (default: the only ``jobqueue`` section, 1 job).

Example — prepare and write a scan on four SLURM jobs::

    from ptydask.parallel.cluster import connect
    client = connect({"kind": "slurm", "jobs": 4, "cores": 8, "processes": 2, "memory": "32GB",
                      "walltime": "01:00:00", "queue": "batch"})
    prepared = prepare(open_frames("raw.h5", "entry/data/data", ...), shape=256, auto_center=True)
    to_ptyd_distributed(prepared, "/shared/scan.ptyd", client, save="link")   # workers write the parts
    client.close(); client.cluster.close()                                     # cancels the jobs

The output folder must be on a file system shared by the workers and the client.
dask-jobqueue is optional (``pip install 'ptydask[hpc]'``); ``kind: local`` needs only distributed.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ParameterError

#: kind -> dask-jobqueue class name
JOBQUEUE = {
    "slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster", "moab": "MoabCluster", "oar": "OARCluster",
}
KINDS = ("local",) + tuple(JOBQUEUE)
COMMON = ("kind", "jobs", "cores", "processes", "memory", "walltime", "queue", "account", "interface", "python",
          "job_script_prologue", "job_extra_directives", "local_directory", "log_directory", "wait", "timeout")


def load_spec(spec: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """The specification as a dict with ``kind`` checked; ``spec`` may be a dict or a YAML/JSON file."""
    if isinstance(spec, (str, os.PathLike)):
        spec = _read_file(Path(spec))
    if not isinstance(spec, Mapping):
        raise ParameterError(f"cluster spec: expected a dict or a YAML/JSON file, got {type(spec).__name__}")
    out = {str(k).replace("-", "_"): v for k, v in spec.items()}
    kind = out.get("kind")
    if kind not in KINDS:
        raise ParameterError(f"cluster spec: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    jobs = out.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ParameterError(f"cluster spec: 'jobs' must be an integer >= 0, got {jobs!r}")
    return out


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParameterError(f"cluster spec: {path}: no such file")
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ParameterError(f"cluster spec: {path} does not hold a mapping")
    if "jobqueue" not in data:
        return data
    sections = data["jobqueue"] or {}
    ours = dict(((data.get("ptydask") or {}).get("cluster")) or {})
    kind = ours.get("kind") or (next(iter(sections)) if len(sections) == 1 else None)
    if kind not in sections:
        raise ParameterError(f"cluster spec: {path}: say which jobqueue section to use with "
                             f"ptydask: {{cluster: {{kind: ...}}}} (sections: {', '.join(sections)})")
    return {**{k.replace("-", "_"): v for k, v in (sections[kind] or {}).items()}, **ours, "kind": kind}


def make_cluster(spec: Mapping[str, Any] | str | os.PathLike) -> Any:
    """A cluster object (not yet scaled for batch kinds) built from ``spec``; see the module docstring."""
    spec = load_spec(spec)
    kind = spec["kind"]
    if kind == "local":
        from distributed import LocalCluster

        cores = int(spec.get("cores") or 1)
        kw = {"n_workers": int(spec.get("jobs", 1)), "threads_per_worker": cores, "processes": True,
              "dashboard_address": ":0"}  # a free port: 8787 may be taken
        if spec.get("memory") is not None:
            kw["memory_limit"] = spec["memory"]
        if spec.get("local_directory"):
            kw["local_directory"] = spec["local_directory"]
        return LocalCluster(**kw)
    try:
        import dask_jobqueue
    except ImportError:
        raise ParameterError(f"cluster spec: kind {kind!r} needs dask-jobqueue: pip install 'ptydask[hpc]'") from None
    cls = getattr(dask_jobqueue, JOBQUEUE[kind])
    kw = {k: v for k, v in spec.items() if k not in ("kind", "jobs", "wait", "timeout") and v is not None}
    kw.setdefault("python", sys.executable)
    kw.setdefault("cores", 1)
    kw.setdefault("memory", "2GB")
    kw.setdefault("processes", 1)
    kw.setdefault("scheduler_options", {"dashboard_address": ":0"})  # a free port, not 8787
    try:
        return cls(**kw)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"cluster spec: {JOBQUEUE[kind]} refused the parameters: {exc}{_hint(kw)}") from None


def _hint(kw: Mapping[str, Any]) -> str:
    odd = [k for k in kw if k not in COMMON]
    hints = [f"{k!r} (did you mean {m[0]!r}?)" for k in odd if (m := difflib.get_close_matches(k, COMMON, n=1))]
    return f"; check {', '.join(hints)}" if hints else ""


def connect(spec: Mapping[str, Any] | str | os.PathLike, *, wait: bool | None = None,
            timeout: float | None = None) -> Any:
    """Build the cluster of ``spec``, submit its ``jobs`` and return a ``distributed.Client`` on it.

    ``wait`` (default: the spec's ``wait``, else True): block until every
    worker of the jobs has joined, at most ``timeout`` seconds (spec's
    ``timeout``, else 600 s); a ``TimeoutError`` closes the cluster (cancelling
    the jobs). The cluster is ``client.cluster``; close both when done.
    """
    from distributed import Client

    spec = load_spec(spec)
    cluster = make_cluster(spec)
    client = None
    try:
        jobs = int(spec.get("jobs", 1))
        if spec["kind"] != "local":
            cluster.scale(jobs=jobs)
        client = Client(cluster)
        wait = spec.get("wait", True) if wait is None else wait
        if wait and jobs:
            per_job = 1 if spec["kind"] == "local" else int(spec.get("processes") or 1)
            client.wait_for_workers(jobs * per_job, timeout=timeout or spec.get("timeout") or 600)
    except BaseException:
        if client is not None:
            client.close()
        cluster.close()
        raise
    return client
