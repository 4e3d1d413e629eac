"""Sweeps: a section plans the runs of a stage, an executor runs them, the analysis reads the records.

A stage is a list of independent :class:`Job` s (e.g. every method × seed of a table); stages that
depend on an earlier stage's records stay sequential in the section's code. ``run(jobs)`` hands
them to an executor and returns their records in the order of ``jobs``. Every job is an ordinary
recorded run (:func:`mtl.runs.run_or_load` under a per-run file lock), so a finished run is
loaded, never trained twice, whichever worker gets it, and a run that fails leaves nothing
recorded: the next sweep retries it.

Executors (one small class each, :data:`EXECUTORS`): ``serial`` runs the jobs one after another
in this process (the default, and what tests use); ``local`` runs them in ``workers`` processes of
this machine. The executor of a sweep is the ``executor`` argument, else the one named by the
environment (``MTL_EXECUTOR``, ``MTL_WORKERS``, ``MTL_THREADS``: what ``mtl-reproduce --executor``
sets for the notebooks it runs), else ``serial``.

A run's record does not depend on the executor: the same spec, seed and torch thread count give
the same metrics (``threads`` pins the count per run; unset, a worker keeps the count it has).
"""
from __future__ import annotations

import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable, Mapping, Sequence

from .checks import check_count
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


def execute(job: Job, threads: int | None = None) -> Outcome:
    """Run ``job`` with torch pinned to ``threads`` threads (restored after); errors are returned, not raised."""
    try:
        with pinned_threads(threads):
            return Outcome(job())
    except Exception as e:  # noqa: BLE001 - reported with the job; the sweep goes on
        return Outcome(None, f"{type(e).__name__}: {e}", traceback.format_exc())


class Serial:
    """Jobs one after another in this process."""

    name = "serial"

    def __init__(self, threads: int | None = None):
        self.threads = None if threads is None else check_count("threads", threads)

    def map(self, jobs: Sequence[Job]) -> list[Outcome]:
        return [execute(j, self.threads) for j in jobs]

    def __repr__(self) -> str:
        return f"Serial(threads={self.threads})"


class Local:
    """Jobs in ``workers`` fresh processes of this machine (spawned: no inherited state), each with
    torch pinned to ``threads`` threads (default: all cores, one thread per worker)."""

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = 1):
        self.workers = check_count("workers", workers if workers is not None else (os.cpu_count() or 1))
        self.threads = None if threads is None else check_count("threads", threads)

    def map(self, jobs: Sequence[Job]) -> list[Outcome]:
        if not jobs:
            return []
        with ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(execute, j, self.threads) for j in jobs]
            return [_result(f) for f in futures]

    def __repr__(self) -> str:
        return f"Local(workers={self.workers}, threads={self.threads})"


def _result(future) -> Outcome:
    """A future's outcome; a worker that died (e.g. killed) is reported like a failed run."""
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - BrokenProcessPool and the like
        return Outcome(None, f"worker died: {type(e).__name__}: {e}")


EXECUTORS: dict[str, Callable[..., Any]] = {"serial": Serial, "local": Local}


def create(name: str, **kwargs):
    """Executor ``name`` (see :data:`EXECUTORS`) with its keyword arguments."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; valid: {sorted(EXECUTORS)}")
    return EXECUTORS[name](**kwargs)


def from_env(environ: Mapping[str, str] | None = None):
    """The executor named by ``MTL_EXECUTOR`` (default ``serial``) with ``MTL_WORKERS`` / ``MTL_THREADS``."""
    env = os.environ if environ is None else environ
    name = env.get("MTL_EXECUTOR", "serial")
    kwargs = {}
    if env.get("MTL_THREADS"):
        kwargs["threads"] = int(env["MTL_THREADS"])
    if env.get("MTL_WORKERS") and name != "serial":
        kwargs["workers"] = int(env["MTL_WORKERS"])
    return create(name, **kwargs)


def run(jobs: Sequence[Job], executor=None) -> list[dict]:
    """The records of ``jobs`` (in their order), run on ``executor`` (default: :func:`from_env`).

    Every job runs even when some fail; then a :class:`SweepError` names each failed job and its error.
    """
    jobs = list(jobs)
    executor = executor if executor is not None else from_env()
    outcomes = executor.map(jobs)
    failures = [(j, o) for j, o in zip(jobs, outcomes) if o.error is not None]
    if failures:
        raise SweepError(failures)
    return [o.record for o in outcomes]
