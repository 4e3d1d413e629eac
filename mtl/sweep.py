"""Sweeps: a section plans the runs of a stage, an executor runs them, the analysis reads the records.

A stage is a list of independent :class:`Job` s (e.g. every method × seed of a table); stages that
depend on an earlier stage's records stay sequential in the section's code. ``run(jobs)`` hands
them to an executor and returns their records in the order of ``jobs``. Every job is an ordinary
recorded run (:func:`mtl.runs.run_or_load` under a per-run file lock), so a finished run is
loaded, never trained twice, whichever worker gets it, and a run that fails leaves nothing
recorded: the next sweep retries it.

Executors (one small class each, :data:`EXECUTORS`): ``serial`` runs the jobs one after another
in this process (the default, and what tests use); ``local`` runs them in ``workers`` processes of
this machine; ``ray`` runs one Ray task per run on an existing Ray cluster (``address``) or on a
local one; ``slurm`` submits one Slurm job array through submitit (``cluster="local"``: submitit's
local backend, same code path, for tests and single machines). ``ray`` and ``slurm`` need the
``cluster`` extra (``pip install 'mtl-imbalance[cluster]'``). The executor of a sweep is the
``executor`` argument, else the one named by the environment (``MTL_EXECUTOR``, ``MTL_WORKERS``,
``MTL_THREADS``, ``MTL_GPUS_PER_RUN``, ``MTL_RAY_ADDRESS``, ``MTL_SLURM_CONFIG``: what ``mtl-reproduce --executor``
sets for the notebooks it runs), else ``serial``. Workers that do not inherit this process's
environment (a Ray cluster, Slurm nodes) get its ``MTL_*`` variables (:func:`worker_env`) with
each job, so roots, caches and the dry-run mode are the same there.

Progress: one tqdm bar over the runs of a sweep (postfix done / running / failed), shown only when
stderr is a terminal and neither ``CI`` nor ``TQDM_DISABLE=1`` is set (so never in notebooks or CI).

A run's record does not depend on the executor: the same spec, seed and torch thread count give
the same metrics (``threads`` pins the count per run; unset, a worker keeps the count it has).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml
from tqdm import tqdm

from .checks import check_count, check_positive
from .experiment import RunSpec, pinned_threads, train_run


@dataclass(frozen=True)
class Job:
    """One recorded run: ``fn(out_dir, *args, **kwargs)`` returns its record.

    ``fn`` must be a module-level function (executors pickle jobs to send them to workers);
    ``label`` names the job in progress bars and error reports.
    """

    fn: Callable[..., dict]
    out_dir: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __call__(self) -> dict:
        return self.fn(self.out_dir, *self.args, **self.kwargs)


def train(out_dir, spec: Mapping[str, Any] | RunSpec) -> Job:
    """The job of :func:`mtl.experiment.train_run` on ``spec``."""
    spec = RunSpec.from_dict(spec)
    return Job(train_run, str(out_dir), (spec,), label=spec.name or spec.run_id())


@dataclass(frozen=True)
class Outcome:
    """A job's record, or the error it raised (``error``: one line; ``trace``: the traceback)."""

    record: dict | None
    error: str | None = None
    trace: str | None = None


class SweepError(RuntimeError):
    """Some jobs of a sweep failed; the others ran. ``failures`` holds (job, outcome) pairs."""

    def __init__(self, failures: list[tuple[Job, Outcome]]):
        self.failures = failures
        lines = [f"{len(failures)} run(s) failed (the others finished and are recorded; rerun to retry):"]
        lines += [f"- {job.label or job.fn.__name__} in {job.out_dir}: {out.error}" for job, out in failures]
        super().__init__("\n".join(lines))


def worker_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``MTL_*`` variables of this process (roots, caches, dry-run mode, executor settings):
    what a worker that does not inherit this environment gets with each job."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith("MTL_")}


@contextlib.contextmanager
def environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """``os.environ`` updated with ``env`` (processes started inside inherit it), restored after."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(job: Job, threads: int | None = None, env: Mapping[str, str] | None = None) -> Outcome:
    """Run ``job`` with torch pinned to ``threads`` threads and ``env`` set (both restored after);
    errors are returned, not raised."""
    try:
        with pinned_threads(threads), environment(env):
            return Outcome(job())
    except Exception as e:  # noqa: BLE001 - reported with the job; the sweep goes on
        return Outcome(None, f"{type(e).__name__}: {e}", traceback.format_exc())


def show_progress(stream=None, environ: Mapping[str, str] | None = None) -> bool:
    """A progress bar is shown on a terminal only: not under CI (``CI`` set), not with
    ``TQDM_DISABLE=1``, not in notebooks (their stderr is no TTY)."""
    env = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    if env.get("CI") or env.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """One bar over the runs of a sweep; executors report ``running(n)`` and each ``finished(outcome)``."""

    def __init__(self, total: int, desc: str = "sweep", stream=None, environ: Mapping[str, str] | None = None):
        self.done = self.failed = self.active = 0
        stream = sys.stderr if stream is None else stream
        self.bar = tqdm(total=total, desc=desc, file=stream, unit="run", dynamic_ncols=True,
                        disable=not show_progress(stream, environ))
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(f"done={self.done} running={self.active} failed={self.failed}", refresh=True)

    def running(self, n: int) -> None:
        if n != self.active:
            self.active = n
            self._show()

    def finished(self, outcome: Outcome) -> None:
        self.done += outcome.error is None
        self.failed += outcome.error is not None
        self.active = max(0, self.active - 1)
        self._show()
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class _Quiet:
    """A progress that shows nothing (an executor's ``map`` called directly)."""

    def running(self, n: int) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


class Serial:
    """Jobs one after another in this process."""

    name = "serial"

    def __init__(self, threads: int | None = None):
        self.threads = None if threads is None else check_count("threads", threads)

    def map(self, jobs: Sequence[Job], progress=None) -> list[Outcome]:
        progress, out = progress or _Quiet(), []
        for j in jobs:
            progress.running(1)
            out.append(execute(j, self.threads))
            progress.finished(out[-1])
        return out

    def __repr__(self) -> str:
        return f"Serial(threads={self.threads})"


class Local:
    """Jobs in ``workers`` fresh processes of this machine (spawned: no inherited state), each with
    torch pinned to ``threads`` threads (default: all cores, one thread per worker)."""

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = 1):
        self.workers = check_count("workers", workers if workers is not None else (os.cpu_count() or 1))
        self.threads = None if threads is None else check_count("threads", threads)

    def map(self, jobs: Sequence[Job], progress=None) -> list[Outcome]:
        if not jobs:
            return []
        progress, workers = progress or _Quiet(), min(self.workers, len(jobs))
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(execute, j, self.threads) for j in jobs]
            pending = set(futures)
            while pending:
                progress.running(min(workers, len(pending)))
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    progress.finished(_result(f))
            return [_result(f) for f in futures]

    def __repr__(self) -> str:
        return f"Local(workers={self.workers}, threads={self.threads})"


def _result(future) -> Outcome:
    """A future's outcome; a worker that died (e.g. killed) is reported like a failed run."""
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - BrokenProcessPool and the like
        hint = ("; workers are spawned processes that import the main module: in a script, call the sweep "
                "under `if __name__ == \"__main__\":`" if isinstance(e, BrokenProcessPool) else "")
        return Outcome(None, f"worker died: {type(e).__name__}: {e}{hint}")


class Ray:
    """One Ray task per run, each asking for ``threads`` CPUs (torch pinned to them) and
    ``gpus_per_run`` GPUs. ``address`` (default ``MTL_RAY_ADDRESS``) joins an existing cluster
    (``"auto"``: the one this node belongs to), where every node must have this package installed;
    without one a local cluster of ``workers`` × ``threads`` CPUs is started and shut down per sweep.
    A Ray already initialised in this process is used as it is."""

    name = "ray"

    def __init__(self, workers: int | None = None, threads: int | None = 1, address: str | None = None,
                 gpus_per_run: float = 0, init_kw: Mapping[str, Any] | None = None):
        try:
            import ray
        except ImportError as e:
            raise ImportError("the 'ray' executor needs Ray: pip install 'mtl-imbalance[cluster]' "
                              "(or pip install ray)") from e
        self._ray = ray
        self.workers = check_count("workers", workers if workers is not None else (os.cpu_count() or 1))
        self.threads = None if threads is None else check_count("threads", threads)
        self.address = address or os.environ.get("MTL_RAY_ADDRESS") or None
        self.gpus_per_run = check_positive("gpus_per_run", gpus_per_run, allow_zero=True)
        self.init_kw = dict(init_kw or {})

    def _init(self) -> bool:
        """Connect to (or start) a cluster unless Ray is up already; True when this call started it."""
        ray = self._ray
        if ray.is_initialized():
            return False
        common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False, **self.init_kw}
        if self.address and self.address.startswith("ray://"):    # Ray Client: no local start-up options
            ray.init(address=self.address, **self.init_kw)
        elif self.address:
            ray.init(address=self.address, **common)
        else:
            # "local": a new cluster, even where `ray start` left one this process would join
            ray.init(address="local", num_cpus=self.workers * (self.threads or 1), **common)
        return True

    def map(self, jobs: Sequence[Job], progress=None) -> list[Outcome]:
        if not jobs:
            return []
        ray, progress = self._ray, progress or _Quiet()
        started = self._init()
        try:
            task = ray.remote(execute).options(num_cpus=self.threads or 1, num_gpus=self.gpus_per_run,
                                               max_retries=0)
            env = worker_env()
            refs = [task.remote(j, self.threads, env) for j in jobs]
            index = {ref: i for i, ref in enumerate(refs)}
            outcomes: list[Outcome | None] = [None] * len(jobs)
            pending = list(refs)
            while pending:
                progress.running(min(self.workers, len(pending)))
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        outcomes[index[ref]] = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a worker that died, a node lost
                        outcomes[index[ref]] = Outcome(None, f"worker died: {type(e).__name__}: {e}")
                    progress.finished(outcomes[index[ref]])
            return outcomes
        finally:
            if started:
                ray.shutdown()

    def __repr__(self) -> str:
        return (f"Ray(workers={self.workers}, threads={self.threads}, address={self.address!r}, "
                f"gpus_per_run={self.gpus_per_run})")


SLURM_KEYS = ("partition", "time", "gpus_per_run", "cpus_per_run", "mem_gb", "workers", "threads", "cluster",
              "account", "qos", "constraint", "setup", "additional", "poll_s")


def slurm_config(path: str | Path) -> dict:
    """The settings of a Slurm config file (YAML mapping with keys among :data:`SLURM_KEYS`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Slurm config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"Slurm config {path} must be a mapping of {list(SLURM_KEYS)}, got {type(data).__name__}")
    unknown = sorted(set(data) - set(SLURM_KEYS))
    if unknown:
        raise ValueError(f"Slurm config {path}: unknown key(s) {unknown}; valid keys: {list(SLURM_KEYS)}")
    return data


class Slurm:
    """One Slurm job array per sweep (submitit's ``map_array``), one array task per run, at most
    ``workers`` at once; each asks for ``cpus_per_run`` CPUs (default ``threads``; torch pinned to
    ``threads``), ``gpus_per_run`` GPUs, ``mem_gb`` GB, ``time`` minutes on ``partition``.

    Settings come from ``config`` (a YAML file, default ``MTL_SLURM_CONFIG``, see :func:`slurm_config`),
    keyword arguments overriding it. Logs and submitit's files go to ``<out_dir>/.slurm/`` (the
    common folder of the jobs' out_dirs). ``cluster="local"`` runs the same array with submitit's
    local backend (processes on this machine, no Slurm needed); ``account``, ``qos``, ``constraint``
    and ``additional`` (a mapping of other sbatch options) are passed to Slurm; ``setup`` lines
    run before each job (e.g. ``module load``, activating the environment).
    """

    name = "slurm"

    def __init__(self, config: str | Path | None = None, **settings):
        try:
            import submitit
        except ImportError as e:
            raise ImportError("the 'slurm' executor needs submitit: pip install 'mtl-imbalance[cluster]' "
                              "(or pip install submitit)") from e
        self._submitit = submitit
        unknown = sorted(set(settings) - set(SLURM_KEYS))
        if unknown:
            raise TypeError(f"Slurm executor: unknown setting(s) {unknown}; valid: {list(SLURM_KEYS)}")
        config = config or os.environ.get("MTL_SLURM_CONFIG") or None
        s = {**(slurm_config(config) if config else {}), **{k: v for k, v in settings.items() if v is not None}}
        self.config = None if config is None else str(config)
        self.workers = check_count("workers", s.get("workers", 64))
        self.threads = None if s.get("threads", 1) is None else check_count("threads", s.get("threads", 1))
        self.cpus_per_run = check_count("cpus_per_run", s.get("cpus_per_run", self.threads or 1))
        self.gpus_per_run = check_count("gpus_per_run", s.get("gpus_per_run", 0), minimum=0)
        self.time = check_count("time", s.get("time", 60))          # minutes
        self.mem_gb = None if s.get("mem_gb") is None else check_positive("mem_gb", s["mem_gb"])
        self.poll_s = check_positive("poll_s", s.get("poll_s", 5.0))
        self.cluster = s.get("cluster")
        if self.cluster not in (None, "slurm", "local", "debug"):
            raise ValueError(f"Slurm executor: cluster must be 'slurm', 'local' or 'debug', got {self.cluster!r}")
        self.partition, self.account, self.qos, self.constraint = (s.get(k) for k in ("partition", "account", "qos",
                                                                                       "constraint"))
        self.setup = list(s.get("setup") or [])
        self.additional = dict(s.get("additional") or {})

    def executor(self, folder: Path):
        """The submitit executor of a sweep whose logs go to ``folder``."""
        ex = self._submitit.AutoExecutor(folder=str(folder / "%j"), cluster=self.cluster)
        kw = {"name": "mtl", "timeout_min": self.time, "cpus_per_task": self.cpus_per_run,
              "gpus_per_node": self.gpus_per_run, "tasks_per_node": 1, "nodes": 1}
        if self.mem_gb is not None:
            kw["mem_gb"] = self.mem_gb
        slurm = {"partition": self.partition, "account": self.account, "qos": self.qos,
                 "constraint": self.constraint, "array_parallelism": self.workers,
                 "setup": self.setup or None, "additional_parameters": self.additional or None}
        kw.update({f"slurm_{k}": v for k, v in slurm.items() if v is not None})
        ex.update_parameters(**kw)
        return ex

    def map(self, jobs: Sequence[Job], progress=None) -> list[Outcome]:
        if not jobs:
            return []
        progress = progress or _Quiet()
        folder = Path(os.path.commonpath([os.path.abspath(j.out_dir) for j in jobs])) / ".slurm"
        folder.mkdir(parents=True, exist_ok=True)
        env = worker_env()
        n = len(jobs)
        handles = self.executor(folder).map_array(execute, list(jobs), [self.threads] * n, [env] * n)
        outcomes: list[Outcome | None] = [None] * n
        while any(o is None for o in outcomes):
            for i, h in enumerate(handles):
                if outcomes[i] is None and h.done():
                    outcomes[i] = _slurm_result(h)
                    progress.finished(outcomes[i])
            left = [h for i, h in enumerate(handles) if outcomes[i] is None]
            if left and self.cluster in (None, "slurm") and not _in_queue(handles[0].job_id.split("_")[0]):
                time.sleep(self.poll_s)            # gone from the queue: its result file is there, or never will be
                for i, h in enumerate(handles):
                    if outcomes[i] is None:
                        outcomes[i] = _slurm_result(h) if h.done() else Outcome(
                            None, f"Slurm job {h.job_id} left the queue without a result (killed, timed out or "
                                  f"its node failed; log: {h.paths.stderr})")
                        progress.finished(outcomes[i])
            elif left:
                progress.running(sum(h.state == "RUNNING" for h in left))
                time.sleep(self.poll_s)
        return outcomes

    def __repr__(self) -> str:
        return (f"Slurm(cluster={self.cluster!r}, partition={self.partition!r}, workers={self.workers}, "
                f"threads={self.threads}, cpus_per_run={self.cpus_per_run}, gpus_per_run={self.gpus_per_run}, "
                f"time={self.time}, mem_gb={self.mem_gb})")


_ACTIVE = "PD,CF,R,CG,S,ST,RQ,RS,RH,RF,SE,SO"    # Slurm's job states before a job has ended


def _in_queue(array_id: str) -> bool:
    """Whether Slurm still lists a task of job array ``array_id`` (pending or running); True when
    ``squeue`` cannot tell (not installed, controller busy), so the sweep waits on."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", array_id, "-t", _ACTIVE, "-o", "%i"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return True
    if out.returncode != 0:                 # a job purged from the controller is an "Invalid job id"
        return "invalid job id" not in out.stderr.lower()
    return bool(out.stdout.strip())


def _slurm_result(handle) -> Outcome:
    """A submitit job's outcome; a job that failed outside the run (timeout, node failure, killed)
    is reported with its log file."""
    try:
        return handle.result()
    except Exception as e:  # noqa: BLE001 - UncompletedJobError, FailedJobError...
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        return Outcome(None, f"Slurm job {handle.job_id} failed: {type(e).__name__}: {lines[-1] if lines else ''} "
                             f"(log: {handle.paths.stderr})", str(e))


EXECUTORS: dict[str, Callable[..., Any]] = {"serial": Serial, "local": Local, "ray": Ray, "slurm": Slurm}


def create(name: str, **kwargs):
    """Executor ``name`` (see :data:`EXECUTORS`) with its keyword arguments."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; valid: {sorted(EXECUTORS)}")
    return EXECUTORS[name](**kwargs)


ENV = {"workers": "MTL_WORKERS", "threads": "MTL_THREADS", "gpus_per_run": "MTL_GPUS_PER_RUN",
       "address": "MTL_RAY_ADDRESS", "config": "MTL_SLURM_CONFIG"}
ENV_OPTIONS = {"serial": ("threads",), "local": ("workers", "threads"),
               "ray": ("workers", "threads", "gpus_per_run", "address"),
               "slurm": ("workers", "threads", "gpus_per_run", "config")}


def _env_number(env: Mapping[str, str], var: str, kind: type):
    try:
        return kind(env[var])
    except ValueError:
        raise ValueError(f"{var} must be {'an integer' if kind is int else 'a number'}, got {env[var]!r}") from None


def from_env(environ: Mapping[str, str] | None = None):
    """The executor named by ``MTL_EXECUTOR`` (default ``serial``) with the settings of :data:`ENV`
    that it takes (:data:`ENV_OPTIONS`; others are ignored)."""
    env = os.environ if environ is None else environ
    name = env.get("MTL_EXECUTOR") or "serial"
    kwargs = {}
    for key in ENV_OPTIONS.get(name, ()):
        var = ENV[key]
        if env.get(var):
            kind = {"workers": int, "threads": int, "gpus_per_run": float}.get(key)
            kwargs[key] = _env_number(env, var, kind) if kind else env[var]
    return create(name, **kwargs)


def run(jobs: Sequence[Job], executor=None) -> list[dict]:
    """The records of ``jobs`` (in their order), run on ``executor`` (default: :func:`from_env`).

    Every job runs even when some fail; then a :class:`SweepError` names each failed job and its error.
    """
    jobs = list(jobs)
    executor = executor if executor is not None else from_env()
    progress = Progress(len(jobs), desc=f"sweep ({executor.name})")
    try:
        outcomes = executor.map(jobs, progress)
    finally:
        progress.close()
    failures = [(j, o) for j, o in zip(jobs, outcomes) if o.error is not None]
    if failures:
        raise SweepError(failures)
    return [o.record for o in outcomes]
