"""``mtl-reproduce``: run every section page with papermill into ``runs/``, then build the book.

Each section page ``book/sections/<section>.md`` (a MyST text notebook, read with jupytext) is
executed at a profile into ``runs/<section>/<profile>/<section>.ipynb`` (its runs are loaded when
already finished). A failing section does not stop the others; the command exits non-zero naming
it. The book is then built from the executed notebooks (never re-executed) with warnings as errors.

``--executor`` (default ``local``: one worker per core, one torch thread each) and its settings are
handed to the notebooks' kernels as ``MTL_EXECUTOR`` & co. (see :mod:`mtl.sweep`), so every sweep
of a section runs on it. ``--dry-run`` executes the sections in dry mode (:mod:`mtl.train`: every
training run takes one step on one batch) with their runs in a temporary folder, then prints per
section the number of runs and an estimate of their full training cost; nothing is written under
``runs/`` and no book is built.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from . import sweep
from .paths import portable, repo_root, sibling_run_dirs, status_file
from .profiles import PROFILES
from .report import text_table
from .runs import finished_records, recorded, write_json
from .train import DRY_RUN, DRY_RUN_LOG


def sections(book: Path | None = None) -> list[str]:
    """Section names (``book/sections/<section>.md``), in book order (the order of
    ``book/sections/ORDER`` then alphabetical)."""
    book = book or repo_root() / "book"
    found = sorted(p.stem for p in (book / "sections").glob("*.md"))
    order_file = book / "sections" / "ORDER"
    order = order_file.read_text().split() if order_file.exists() else []
    return [s for s in order if s in found] + [s for s in found if s not in order]


def read_page(path: Path):
    """A section page as an nbformat notebook: jupytext reads the MyST text; its cells get ids from
    their position (stable executed notebooks) and the text-pairing metadata is dropped."""
    import jupytext

    nb = jupytext.read(path)
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def execute_section(section: str, profile: str, runs_root: Path, book: Path | None = None,
                    timeout: int | None = None, env: Mapping[str, str] | None = None) -> dict:
    """Run one section page with papermill into ``runs_root/<section>/<profile>``; returns status,
    duration and output path. ``env`` (e.g. :func:`executor_env`) is set for the notebook's kernel."""
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    book = book or repo_root() / "book"
    page = book / "sections" / f"{section}.md"
    out_dir = (runs_root / section / profile).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    before = set(finished_records(out_dir))
    out_nb = out_dir / f"{section}.ipynb"
    src_nb = out_dir / f".{section}.source.ipynb"   # the page as a notebook, for papermill
    tmp_nb = out_dir / f".{section}.running.ipynb"
    nbformat.write(read_page(page), src_nb)
    start = time.perf_counter()
    status = "ok"
    try:
        with sweep.environment(env):
            pm.execute_notebook(str(src_nb), str(tmp_nb),
                                parameters={"profile": profile, "out_dir": portable(out_dir), "progress": False},
                                kernel_name="python3", cwd=str(repo_root()), progress_bar=False,
                                log_output=False, execution_timeout=timeout)
    except PapermillExecutionError as e:
        status = f"{e.ename}: {e.evalue} (cell {e.exec_count})"
    except Exception as e:  # a dead kernel, a missing kernel...
        status = f"{type(e).__name__}: {e}"
    finally:
        src_nb.unlink(missing_ok=True)
    duration = time.perf_counter() - start
    if tmp_nb.exists():
        nb = nbformat.read(tmp_nb, as_version=4)
        for cell in nb.cells:  # the injected parameters are shown folded, like the page's
            if "injected-parameters" in cell.metadata.get("tags", []):
                cell.metadata.setdefault("tags", []).append("hide-input")
                cell["id"] = "injected-parameters"
        nb.metadata["mystnb"] = {"execution_mode": "off"}
        nb.metadata.setdefault("papermill", {})["input_path"] = str(page)  # the page, not its temporary copy
        portable_paths(nb)
        if status == "ok":
            nbformat.write(nb, tmp_nb)
            os.replace(tmp_nb, out_nb)
        else:
            failed = out_dir / f"{section}.failed.ipynb"
            nbformat.write(nb, failed)
            tmp_nb.unlink()
    return {"section": section, "profile": profile, "status": status, "duration_s": round(duration, 1),
            "notebook": str(out_nb), **provenance(out_dir, before)}


def provenance(out_dir: Path, before: set[Path]) -> dict:
    """What the status page shows of a section's execution beside its status and time: its finished
    runs (``runs``), how many this execution trained (``trained``: not there ``before``) and how many it
    copied from another section instead (``copied``: :func:`copied_records`), the torch thread counts and
    versions they recorded (``{value: runs}``), and the commit checked out."""
    after = finished_records(out_dir)
    new = sorted(set(after) - before)
    copied = copied_records(out_dir, new)
    return {"runs": len(after), "trained": len(new) - copied, "copied": copied,
            "threads": {str(k): n for k, n in sorted(recorded(out_dir, "threads").items())},
            "torch": dict(sorted(recorded(out_dir, "torch").items())), "commit": git_commit()}


def copied_records(out_dir: Path, records: list[Path]) -> int:
    """How many of ``records`` (``metrics.json`` files under ``out_dir``) are copies of a run recorded by a
    sibling section (:func:`mtl.paths.sibling_run_dirs`): the same run id there with a byte-identical
    ``metrics.json``. A run trained again is never byte-identical: its record holds its own train time."""
    siblings = sibling_run_dirs(out_dir)
    n = 0
    for f in records:
        rel = f.relative_to(out_dir)
        n += any((d / rel).is_file() and (d / rel).read_bytes() == f.read_bytes() for d in siblings)
    return n


def git_commit(root: Path | None = None) -> str | None:
    """The checked-out commit (12 hex digits, ``+dirty`` when tracked files outside runs/ are changed);
    None outside a git checkout."""
    root = root or repo_root()
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=30)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!runs"],
                               cwd=root, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def write_toc(book: Path, runs_root: Path, profile: str = "cpu") -> Path:
    """``_toc.yml``: the intro, protocol, claims, methods and status pages, then each section's executed notebook at
    ``profile`` and, in a second part, the ``gpu`` runs that exist."""
    rel = (os.path.relpath(runs_root.resolve(), book.resolve())
           if (book / "runs").resolve() != runs_root.resolve() else "runs")
    lines = ["# Generated by mtl.reproduce.write_toc — section pages are papermill outputs under runs/.",
             "format: jb-book", "root: intro", "parts:", "  - caption: The companion", "    chapters:",
             "      - file: protocol", "      - file: claims", "      - file: methods", "      - file: status",
             "  - caption: Sections",
             "    chapters:"]
    done = [s for s in sections(book) if (runs_root / s / profile / f"{s}.ipynb").exists()]
    lines += [f"      - file: {rel}/{s}/{profile}/{s}" for s in done] or ["      - file: protocol"]
    gpu = [s for s in sections(book) if profile != "gpu" and (runs_root / s / "gpu" / f"{s}.ipynb").exists()]
    if gpu:
        lines += ["  - caption: GPU profile", "    chapters:"] + [f"      - file: {rel}/{s}/gpu/{s}" for s in gpu]
    path = book / "_toc.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def build_book(book: Path) -> int:
    cmd = [sys.executable, "-m", "jupyter_book", "build", "--all", "-W", "--keep-going", str(book)]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), "build", "--all", "-W", "--keep-going", str(book)]
    return subprocess.call(cmd)


def portable_paths(nb) -> None:
    """papermill's record of where the notebook ran, relative to the checkout (no machine paths in runs/)."""
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = portable(meta[key])
    params = meta.get("parameters", {})
    if isinstance(params.get("out_dir"), str):
        params["out_dir"] = portable(params["out_dir"])


FLAGS = {"workers": "--workers", "threads": "--threads", "gpus_per_run": "--gpus-per-run", "address": "--address",
         "config": "--slurm-config"}


def executor_env(executor: str = "local", workers: int | None = None, threads: int | None = None,
                 address: str | None = None, slurm_config: str | Path | None = None,
                 gpus_per_run: float | None = None) -> dict[str, str]:
    """The ``MTL_*`` variables that make a notebook's ``sweep.run`` use ``executor`` (see
    :func:`mtl.sweep.from_env`). ``local`` and ``ray`` default to one worker per core and every
    executor to one torch thread per run, except ``slurm``, whose unset values come from its
    config file. The settings are checked by building the executor once: a bad value or a missing
    optional dependency raises here (ValueError, FileNotFoundError, ImportError), not in every notebook."""
    if executor not in sweep.EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {sorted(sweep.EXECUTORS)}")
    given = {"workers": workers, "gpus_per_run": gpus_per_run, "address": address, "config": slurm_config}
    wrong = [k for k, v in given.items() if v is not None and k not in sweep.ENV_OPTIONS[executor]]
    if wrong:
        takes = [FLAGS[k] for k in sweep.ENV_OPTIONS[executor]]
        raise ValueError(f"executor {executor!r} takes no {', '.join(FLAGS[k] for k in wrong)} (it takes {takes})")
    if workers is None and executor in ("local", "ray"):
        workers = os.cpu_count() or 1
    if threads is None and executor != "slurm":
        threads = 1
    if slurm_config is not None:
        slurm_config = Path(slurm_config).resolve()
    values = {"workers": workers, "threads": threads, "gpus_per_run": gpus_per_run, "address": address,
              "config": slurm_config}
    env = {"MTL_EXECUTOR": executor, **{sweep.ENV[k]: str(v) for k, v in values.items() if v is not None}}
    sweep.from_env(env)                     # checks every value, and that ray / submitit are installed
    return env


def dry_run(chosen: list[str], profile: str, book: Path | None = None, timeout: int | None = None,
            env: Mapping[str, str] | None = None, keep: bool = False, report=None) -> list[dict]:
    """Execute ``chosen`` sections at ``profile`` in dry mode, their runs in a temporary folder.

    Returns per section its :func:`execute_section` record plus ``runs`` (training runs made),
    ``step_s`` (their one-step times, summed) and ``estimate_s`` (Σ one-step time × planned steps
    per epoch × epochs: the training cost at full length on this machine, evaluation excluded).
    The folder is removed unless ``keep`` or a section failed (its ``.failed.ipynb`` is there, the
    records' ``notebook`` points into it). ``report(record)`` is called after each section.
    """
    tmp = Path(tempfile.mkdtemp(prefix="mtl-dry-run-"))
    runs_root, logs = tmp / "runs", tmp / "logs"
    logs.mkdir()
    records = []
    try:
        for s in chosen:
            log = logs / f"{s}.jsonl"
            rec = execute_section(s, profile, runs_root, book, timeout,
                                  {**(env or {}), "MTL_RUNS": str(runs_root), DRY_RUN: "1", DRY_RUN_LOG: str(log)})
            entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
            rec.update(runs=len(entries), step_s=sum(e["step_s"] for e in entries),
                       estimate_s=sum(e["estimate_s"] for e in entries))
            records.append(rec)
            if report:
                report(rec)
    finally:
        if not keep and all(r["status"] == "ok" for r in records):
            shutil.rmtree(tmp, ignore_errors=True)
    return records


def duration(seconds: float) -> str:
    """A duration in words a person reads at a glance: 42 s, 7.5 min, 3.2 h, 2.1 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 1.5 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def dry_run_table(records: list[dict]) -> str:
    """The dry run's summary: per section its status, runs, one-step time and estimated full cost."""
    rows = [("section", "status", "runs", "one-step (sum)", "estimated full training")]
    rows += [(r["section"], "ok" if r["status"] == "ok" else "FAILED", str(r["runs"]), duration(r["step_s"]),
              duration(r["estimate_s"])) for r in records]
    rows.append(("total", "", str(sum(r["runs"] for r in records)), duration(sum(r["step_s"] for r in records)),
                 duration(sum(r["estimate_s"] for r in records))))
    return text_table(rows)


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative(text: str) -> float:
    """argparse type: a number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text}")
    return value


class terminate_as_interrupt:
    """While inside, SIGTERM (``kill``, a scheduler's stop; background jobs ignore SIGINT) raises
    KeyboardInterrupt in the main thread, so it stops the way Ctrl-C does: finished sections are recorded."""

    def _raise(self, signum, frame):
        raise KeyboardInterrupt

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mtl-reproduce", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", choices=PROFILES)
    ap.add_argument("--sections", nargs="*", help="subset of sections (default: all)")
    ap.add_argument("--no-book", action="store_true", help="run the notebooks only")
    ap.add_argument("--timeout", type=positive_int, default=None, help="per-cell timeout in seconds (≥ 1)")
    ap.add_argument("--executor", default="local", choices=sorted(sweep.EXECUTORS),
                    help="where the sections' runs train (default: local, one worker per core)")
    ap.add_argument("--workers", type=positive_int, default=None,
                    help="runs at once (local, ray: default the number of cores; slurm: array tasks at once)")
    ap.add_argument("--threads", type=positive_int, default=None,
                    help="torch threads (and CPUs asked for) per run (default 1; slurm: its config's, else 1)")
    ap.add_argument("--gpus-per-run", type=non_negative, default=None,
                    help="GPUs asked for per run (ray: may be fractional; slurm: default its config's; default 0)")
    ap.add_argument("--address", default=None, help="Ray cluster to join (ray only; default $MTL_RAY_ADDRESS "
                                                    "or a local cluster)")
    ap.add_argument("--slurm-config", default=None, metavar="FILE",
                    help="YAML file of Slurm settings: partition, time, gpus_per_run, mem_gb... (slurm only)")
    ap.add_argument("--dry-run", action="store_true",
                    help="one step per training run, runs in a temporary folder; prints the runs and their "
                         "estimated cost per section (nothing written under runs/, no book)")
    args = ap.parse_args(argv)
    try:
        env = executor_env(args.executor, args.workers, args.threads, args.address, args.slurm_config,
                           args.gpus_per_run)
    except (ValueError, FileNotFoundError, ImportError, TypeError) as e:
        ap.error(str(e))
    root = repo_root()
    book, runs_root = root / "book", root / "runs"
    all_sections = sections(book)
    if args.sections is not None and not args.sections:
        ap.error(f"--sections needs at least one section name (omit it to run all); valid: {all_sections}")
    chosen = args.sections or all_sections
    unknown = [s for s in chosen if s not in all_sections]
    if unknown:
        ap.error(f"unknown sections {unknown}; valid: {all_sections}")
    if args.dry_run:
        return main_dry_run(chosen, args.profile, book, args.timeout, env)
    records, interrupted = [], False
    try:
        with terminate_as_interrupt(), sweep.environment(env):    # the kernels inherit the executor's settings
            for s in chosen:
                print(f"[mtl-reproduce] {s} @ {args.profile} ...", flush=True)
                rec = execute_section(s, args.profile, runs_root, book, args.timeout)
                print(f"[mtl-reproduce] {s}: {rec['status']} in {rec['duration_s']} s", flush=True)
                records.append(rec)
    except KeyboardInterrupt:       # one line, no traceback: what finished and how to resume
        interrupted = True
    summary_path = status_file(runs_root, args.profile)
    previous = {r["section"]: r for r in (json.loads(summary_path.read_text()) if summary_path.exists() else [])}
    for r in records:  # keep the duration of the last execution that trained runs beside the latest one
        first = previous.get(r["section"], {})
        r["first_duration_s"] = (r["duration_s"] if r.get("trained") else
                                 first.get("first_duration_s", first.get("duration_s", r["duration_s"])))
        made_at = r.get("commit") if r.get("trained") else first.get("runs_commit")   # the last that trained
        if made_at:
            r["runs_commit"] = made_at
        previous[r["section"]] = {**r, "notebook": os.path.relpath(r["notebook"], root)}
    write_json(summary_path, sorted(previous.values(), key=lambda r: r["section"]))
    if interrupted:
        print(f"[mtl-reproduce] interrupted: {len(records)} of {len(chosen)} sections finished; rerun the same "
              "command to resume (finished runs are loaded, not retrained)", file=sys.stderr, flush=True)
        return 130
    failed = [r["section"] for r in records if r["status"] != "ok"]
    rc = 0
    if not args.no_book:
        write_toc(book, runs_root, "cpu" if args.profile in ("smoke", "cpu", "gpu") else args.profile)
        rc = build_book(book)
        print(f"[mtl-reproduce] book: {'built' if rc == 0 else 'FAILED'} -> {book / '_build' / 'html' / 'index.html'}")
    if failed:
        print(f"[mtl-reproduce] failed sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return rc


def main_dry_run(chosen: list[str], profile: str, book: Path, timeout: int | None, env: dict) -> int:
    """``mtl-reproduce --dry-run``: :func:`dry_run`, its table, and non-zero naming failed sections."""
    def report(r):
        print(f"[mtl-reproduce] dry run {r['section']} @ {profile}: {r['status']} in {r['duration_s']} s, "
              f"{r['runs']} runs", flush=True)
    try:
        with terminate_as_interrupt():
            records = dry_run(chosen, profile, book, timeout, env, report=report)
    except KeyboardInterrupt:
        print("[mtl-reproduce] dry run interrupted", file=sys.stderr, flush=True)
        return 130
    print(dry_run_table(records))
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        for r in failed:
            print(f"[mtl-reproduce] {r['section']} failed: {r['status']} (notebook: "
                  f"{Path(r['notebook']).with_suffix('.failed.ipynb')})", file=sys.stderr)
        print(f"[mtl-reproduce] dry run: failed sections: {', '.join(r['section'] for r in failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
