"""``mtl``: the command line — train one run, list the registries, show a run, reproduce the book.

    mtl train SPEC.yaml [--out DIR] [--threads N] [--tensorboard]   one recorded run (as train_run)
    mtl list methods|architectures|backbones|datasets|curves [--match GLOB]
    mtl show RUN_DIR                                                a run's metrics and config
    mtl reproduce [...]                                             the same command as mtl-reproduce

``SPEC.yaml`` is a :class:`~mtl.experiment.RunSpec` mapping (a run's ``config.json`` is one too);
the run is recorded under ``--out`` (default ``$MTL_RUNS/mine``) exactly as
:func:`mtl.experiment.train_run` records it, and a finished run is loaded instead of retrained.
The progress bar shows on a terminal only (never under ``CI`` or with ``TQDM_DISABLE=1``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from . import curves as C
from . import data as D
from . import reproduce
from . import weighting as W
from .experiment import RunSpec, train_run
from .models import ARCHITECTURES, BACKBONES
from .paths import runs_dir
from .report import text_table
from .runs import CorruptRecordError, load_run
from .sweep import show_progress

REGISTRIES = {"methods": W.WEIGHTINGS, "architectures": ARCHITECTURES, "backbones": BACKBONES,
              "datasets": D.DATASETS, "curves": C.FAMILIES}


class CommandError(Exception):
    """A mistake in what the user asked for: printed as one line (what is wrong, what is valid), exit 2."""


# ----------------------------------------------------------------------------- the commands
def list_table(kind: str, pattern: str = "*") -> str:
    """The registry ``kind`` as a table: name, label, paper (methods add what they need and their modes)."""
    if kind not in REGISTRIES:
        raise CommandError(f"unknown registry {kind!r}; valid: {', '.join(REGISTRIES)}")
    reg = REGISTRIES[kind]
    names = reg.names(pattern)
    if not names:
        raise CommandError(f"no {kind} match {pattern!r}; valid names: {', '.join(reg.names())}")
    if kind == "methods":
        rows = [("name", "label", "needs", "modes", "paper")]
        rows += [(n, i.label, i.needs, ",".join(i.modes) or "—", i.paper or "—") for n, i in
                 ((n, reg.info(n)) for n in names)]
    else:
        rows = [("name", "label", "paper")] + [(n, reg.info(n).label, reg.info(n).paper or "—") for n in names]
    return text_table(rows)


def _flat(prefix: str, value) -> list[tuple[str, str]]:
    """(dotted key, JSON text) of every leaf of a config mapping; empty mappings are left out."""
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flat(f"{prefix}.{k}" if prefix else str(k), v)]
    return [(prefix, value if isinstance(value, str) else json.dumps(value))]


def _number(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def show_text(run_dir: str | Path) -> str:
    """A finished run as text: its id, the test metrics it reports, then its config and how it was made."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CommandError(f"no run folder {run_dir}: give a folder <out>/<name>-<hash>/ holding metrics.json")
    if not (run_dir / "metrics.json").exists():
        what = "an unfinished run (config.json, no metrics.json)" if (run_dir / "config.json").exists() else \
            f"no run record (found {sorted(p.name for p in run_dir.iterdir())[:8] or 'nothing'})"
        raise CommandError(f"{run_dir} holds {what}; a finished run has config.json, history.json and metrics.json")
    try:
        rec = load_run(run_dir)
    except CorruptRecordError as e:
        raise CommandError(str(e)) from None
    info = rec.get("info", {})
    protocol = info.get("config", {}).get("eval_protocol", "last")
    metrics = [("task", "metric", "value")] + [(t, m, _number(v)) for t, ms in rec["metrics"].items()
                                                for m, v in ms.items()]
    config = [("key", "value")] + _flat("", rec["params"])
    made = [("epochs", str(len(rec["history"]))), ("train time", f"{info['train_time']:.1f} s")
            if "train_time" in info else ("train time", "—")]
    made += [(k, str(info[k])) for k in ("device", "torch", "threads", "n_params") if k in info]
    return "\n\n".join([f"run {run_dir.name}", f"test metrics ({protocol} protocol)\n{text_table(metrics)}",
                        f"config\n{text_table(config)}", f"made with\n{text_table([('what', 'value')] + made)}"])


def read_spec(path: str | Path) -> RunSpec:
    """The :class:`RunSpec` of a YAML (or JSON) file, every name and keyword checked (:meth:`RunSpec.check`)."""
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"spec file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CommandError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise CommandError(f"{path} must hold a mapping of RunSpec keys (dataset, backbone, weighting, train, ...), "
                           f"got {type(raw).__name__}")
    try:
        return RunSpec.from_dict(raw).check()
    except (ValueError, TypeError, KeyError) as e:       # unknown keys, names, keywords or values
        raise CommandError(f"{path}: {e}") from None


def train(spec_path: str, out: str | None = None, threads: int | None = None, tensorboard: bool = False,
          progress: bool | None = None) -> dict:
    """``mtl train``: record (or load) the run of ``spec_path`` under ``out``; returns the record."""
    spec = read_spec(spec_path)
    changes = {"threads": threads} if threads is not None else {}
    if tensorboard:
        changes["tensorboard"] = True
    progress = show_progress() if progress is None else progress
    changes["train"] = {**spec.train, "progress": progress}             # presentation: not in the run id
    spec = RunSpec.from_dict({**_fields(spec), **changes})
    return train_run(Path(out) if out else runs_dir() / "mine", spec)


def _fields(spec: RunSpec) -> dict:
    return {k: getattr(spec, k) for k in spec.__dataclass_fields__}


# ----------------------------------------------------------------------------- argparse
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mtl", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="{train,list,show,reproduce}")
    t = sub.add_parser("train", help="train one run from a spec file (loaded when already finished)")
    t.add_argument("spec", metavar="SPEC.yaml", help="RunSpec mapping: dataset, backbone, weighting, train, ...")
    t.add_argument("--out", default=None, metavar="DIR", help="runs folder (default: $MTL_RUNS/mine)")
    t.add_argument("--threads", type=reproduce.positive_int, default=None, help="torch threads (not in the run id)")
    t.add_argument("--tensorboard", action="store_true",
                   help="also write the history as TensorBoard events into <run>/tensorboard/")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    ls = sub.add_parser("list", help="registered methods, architectures, backbones, datasets or curves")
    ls.add_argument("kind", help=f"one of: {', '.join(REGISTRIES)}")
    ls.add_argument("--match", default="*", metavar="GLOB", help="only names matching GLOB (e.g. '*grad')")
    sh = sub.add_parser("show", help="a finished run's metrics and config")
    sh.add_argument("run_dir", metavar="RUN_DIR")
    sub.add_parser("reproduce", help="run the book's sections and build it (mtl reproduce --help)", add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["reproduce"]:                     # the same command as mtl-reproduce, its own flags
        return reproduce.main(argv[1:])
    ap = parser()
    args = ap.parse_args(argv)
    try:
        if args.command == "list":
            print(list_table(args.kind.lower(), args.match))
        elif args.command == "show":
            print(show_text(args.run_dir))
        else:
            rec = train(args.spec, args.out, args.threads, args.tensorboard, False if args.no_progress else None)
            verb = "loaded (already finished)" if rec["resumed"] else "trained"
            print(f"[mtl train] {verb}: {rec['run_dir']}", file=sys.stderr)
            print(show_text(rec["run_dir"]))
    except CommandError as e:
        ap.error(f"{args.command}: {e}")
    except ImportError as e:                          # an optional package asked for (tensorboard, cvxpy, ...)
        ap.exit(2, f"mtl {args.command}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
