"""Command line: ``scl run CONFIG``, ``scl resume OUT_DIR``, ``scl plot OUT_DIR``, ``scl show OUT_DIR``,
``scl samples OUT_DIR --generation G``, ``scl refine CONFIG --knob PATH --lo A --hi B --tol T``.

Invalid input ends with one line ``scl: error: <field>: <what is allowed>`` and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scl.errors import ConfigError

EXIT_USAGE = 2
MAX_SAMPLES = 10**7


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the usage on one line plus ``scl: error: <field>: <message>``."""

    def error(self, message):
        usage = " ".join(self.format_usage().split())
        field = self.prog
        if message.startswith("argument "):
            field, _, message = message[len("argument "):].partition(": ")
            field = field.split("/")[-1]
        elif "required" in message and ":" in message:
            field = message.rpartition(":")[2].strip().split(",")[0].strip()
        print(usage, file=sys.stderr)
        print(f"scl: error: {field}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _results_arg(text) -> Path:
    """OUT_DIR of show / plot: an output folder or a results file (netCDF-4 = HDF5), checked before
    it is opened, so a YAML file or a missing folder is one line."""
    from scl.config import path_arg
    from scl.results import RESULTS_FILE

    p = path_arg("out_dir", text, must_exist=True)
    f = p / RESULTS_FILE if p.is_dir() else p
    if not f.exists():
        raise ConfigError("out_dir", f"no results at {f} (run `scl run` or `scl resume` first)")
    try:
        with open(f, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise ConfigError("out_dir", f"cannot read {f}: {e.strerror}") from None
    if head != HDF5_SIGNATURE:
        raise ConfigError("out_dir", f"{f} is not a results file written by scl (netCDF-4); give the run's "
                          "output folder or its results.nc")
    return p
EXIT_IO = 1


def _one_line_warnings():
    """scl's own warnings (non-finite metrics, unusable checkpoints) as ``scl: warning: ...``."""
    import warnings

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__name__ in ("NonFiniteWarning", "CheckpointWarning"):
            print(f"scl: warning: {message}", file=file or sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    if getattr(previous, "__module__", None) != __name__:
        warnings.showwarning = show


FIGURE_STEMS = ("phase_diagram", "curves", "mode_mass", "class_shares", "final_*", "samples_gen*", "samples_g[0-9]*")
FIGURE_PATTERNS = tuple(f"{stem}{tail}.{ext}" for stem in FIGURE_STEMS for tail in ("", "_*")
                        for ext in ("png", "pdf", "svg"))


def _out_dir(args, cfg) -> Path:
    """``-o OUT`` (checked), else ``runs/<name>``: a name that would leave ``runs/`` (absolute,
    ``..``, empty) is refused, not sanitised, so no run silently lands in an unexpected folder."""
    from scl.config import output_folder

    if args.out:
        return output_folder("--out", args.out)
    name = str(cfg.name)
    parts = Path(name).parts
    if not name.strip() or "\0" in name or Path(name).is_absolute() or not parts or ".." in parts:
        raise ConfigError("name", f"{name!r} cannot name a folder under runs/ (no absolute path, no '..', "
                          "not empty); choose another name or pass -o OUT")
    return Path("runs") / name


def cmd_run(args) -> int:
    from scl.checkpoint import remove
    from scl.config import load_config
    from scl.results import RESULTS_FILE
    from scl.simulate import simulate

    from scl.devices import check_cpu_devices

    check_cpu_devices(args.cpu_devices)
    cfg = load_config(args.config, args.set or [])
    # imported after validation: an invalid config is refused before anything more is imported
    from scl.atomic import remove_stale
    from scl.budget import check_memory
    from scl.distributed import on_primary
    from scl.lock import run_lock

    check_memory(cfg)
    _split_cpu(args, cfg)
    primary = _join(args)
    out = _out_dir(args, cfg)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder")

    def prepare():                  # process 0 only in a --distributed run; the others share the outcome
        if (out / RESULTS_FILE).exists() and not args.overwrite:
            raise ConfigError("--out", f"{out} already holds results; pass --overwrite or choose another -o folder")
        remove_stale(out)
        if args.overwrite:
            remove(out)

    with run_lock(out, "--out"):
        on_primary("prepare", prepare)
        ds = simulate(cfg, progress=not args.no_progress and cfg.run.progress, out_dir=out, resume=args.resume,
                      callbacks=_callbacks(args) if primary else [])
        return _finish(ds, cfg, out, overwrite=args.overwrite, format=args.format) if primary else 0


def _join(args) -> bool:
    """``--distributed``: join JAX's distributed runtime (scl.distributed). True on the process
    that writes results (process 0, or the only one)."""
    from scl.distributed import initialize, is_primary

    if getattr(args, "distributed", False):
        initialize()
    return is_primary()


def _callbacks(args) -> list:
    """``--tensorboard DIR``: a TensorBoard writer (scl.tensorboard) as a per-chunk callback."""
    if not getattr(args, "tensorboard", None):
        return []
    from scl.tensorboard import TensorBoard

    return [TensorBoard(args.tensorboard)]


def _split_cpu(args, cfg):
    """One XLA device per core for large sweeps (scl.devices), before JAX computes anything."""
    from scl.devices import devices_for, use_cpu_devices

    use_cpu_devices(args.cpu_devices if args.cpu_devices is not None else devices_for(cfg))


def _finish(ds, cfg, out: Path, overwrite: bool = False, format: str = "png") -> int:
    """Write config, results, figures and summary into ``out`` (each atomically) and report.

    ``config.yaml`` is renamed into place only after the new results are: a failure (disk full)
    leaves the previous config and results together. ``overwrite``: figures of the previous run
    that this one does not redraw are removed. ``format``: png, pdf or svg figures."""
    from scl.atomic import atomic_path, write_text
    from scl.plots import plot_all
    from scl.results import save_results
    from scl.summary import summarize

    with atomic_path(out / "config.yaml") as config_tmp:
        config_tmp.write_text(cfg.to_yaml())
        path = save_results(ds, out)
    from scl.checkpoint import prune_finished
    from scl.samples import write_run_grids

    grids = write_run_grids(out, cfg, format=format)   # image truths: generations 0, G // 2, G
    prune_finished(out, cfg)      # unless checkpoint.keep_after_finish
    from scl.summary import theory_for

    theory = theory_for(ds)       # closed-form predictions (None: none known, or metrics.theory false)
    figures = plot_all(ds, out, theory=theory, format=format) + grids
    if overwrite:
        new = {Path(f).name for f in figures}
        for pattern in FIGURE_PATTERNS:
            for old in out.glob(pattern):
                if old.name not in new:
                    old.unlink(missing_ok=True)
    text = summarize(ds, theory=theory)
    write_text(out / "summary.txt", text + "\n")
    print(text)
    print(f"results: {path}")
    for f in figures:
        print(f"figure:  {f}")
    return 0


def cmd_resume(args) -> int:
    from scl.atomic import remove_stale
    from scl.checkpoint import saved_config
    from scl.distributed import on_primary
    from scl.lock import run_lock
    from scl.results import RESULTS_FILE, damage
    from scl.simulate import simulate

    from scl.budget import check_memory
    from scl.config import path_arg
    from scl.devices import check_cpu_devices

    check_cpu_devices(args.cpu_devices)
    out = path_arg("out_dir", args.out_dir, must_exist=True)
    cfg = saved_config(out)
    check_memory(cfg)
    _split_cpu(args, cfg)
    primary = _join(args)

    def prepare() -> str:           # process 0 only in a --distributed run; "done": nothing to resume
        remove_stale(out)
        if (out / RESULTS_FILE).exists():
            why = damage(out / RESULTS_FILE)
            if why is None:
                print(f"scl: nothing to resume: {out / RESULTS_FILE} holds the finished run")
                return "done"
            print(f"scl: {out / RESULTS_FILE} is damaged ({why}); rebuilding it from the checkpoints",
                  file=sys.stderr)
        return "resume"

    with run_lock(out):
        if on_primary("prepare", prepare) == "done":
            return 0
        ds = simulate(cfg, progress=not args.no_progress and cfg.run.progress, out_dir=out, resume=True,
                      callbacks=_callbacks(args) if primary else [])
        return _finish(ds, cfg, out, format=args.format) if primary else 0


def cmd_samples(args) -> int:
    from scl.config import output_folder, path_arg
    from scl.samples import plot_generation

    path_arg("out_dir", args.out_dir, must_exist=True)
    if not 1 <= args.n <= MAX_SAMPLES:
        raise ConfigError("--n", f"must be in [1, {MAX_SAMPLES}] samples per configuration, got {args.n}")
    if args.generation < 0:
        raise ConfigError("--generation", f"must be >= 0, got {args.generation}")
    if args.seed < 0:
        raise ConfigError("--seed", f"must be >= 0, got {args.seed}")
    if args.output is not None:
        output_folder("--output", Path(path_arg("--output", args.output)).parent or ".")
        from scl.plots import FORMATS

        if Path(args.output).suffix.lstrip(".") not in FORMATS:
            raise ConfigError("--output", f"must end in .{', .'.join(FORMATS)} (the figure's format), got {args.output}")
    path = plot_generation(args.out_dir, args.generation, n=args.n, seed=args.seed, path=args.output,
                           format=args.format)
    print(f"figure: {path}")
    return 0


def cmd_plot(args) -> int:
    from scl.plots import parse_slice, plot_all
    from scl.results import load_results

    out = _results_arg(args.out_dir)
    ds = load_results(out)
    at = parse_slice(ds, args.slice or [])
    for f in plot_all(ds, out if out.is_dir() else out.parent, format=args.format, at=at):
        print(f"figure: {f}")
    return 0


def cmd_show(args) -> int:
    from scl.results import load_results
    from scl.summary import summarize

    ds = load_results(_results_arg(args.out_dir))
    if args.metric is not None and args.metric not in ds.data_vars:
        raise ConfigError("--metric", f"unknown metric {args.metric!r}; this run has: {', '.join(map(str, ds.data_vars))}")
    print(summarize(ds, args.metric))
    return 0


def cmd_prepare_data(args) -> int:
    from scl.data.tfds_source import prepare

    prepare(args.name, args.data_dir)
    print(f"prepared {args.name} under {args.data_dir} (array_record); use truth: "
          f"{{kind: tfds, dataset: {args.name}, data_dir: {args.data_dir}}}")
    return 0


def cmd_refine(args) -> int:
    from scl.budget import check_memory
    from scl.config import load_config
    from scl.devices import check_cpu_devices
    from scl.phase import boundary

    check_cpu_devices(args.cpu_devices)
    cfg = load_config(args.config, args.set or [])
    check_memory(cfg)
    _split_cpu(args, cfg)
    result = boundary(cfg, args.knob, args.lo, args.hi, args.tol, metric=args.metric,
                      collapse_tol=args.collapse_tol, points=args.points, max_rounds=args.rounds,
                      direction=args.direction, progress=not args.no_progress and cfg.run.progress)
    print(result)
    return 0


def _devices_option(parser):
    parser.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                        help="split the CPU into N XLA devices the sweep shards over (1 to 256; default: one per "
                             "core, at most one per 128 configurations; ignored on GPU/TPU and when "
                             "XLA_FLAGS sets the host device count)")


def _distributed_option(parser):
    parser.add_argument("--distributed", action="store_true",
                        help="one process of a multi-process run (JAX's distributed runtime): start the same "
                             "command on every process (srun, mpirun, a TPU pod's --worker=all, or with "
                             "SCL_COORDINATOR=host:port, SCL_NUM_PROCESSES, SCL_PROCESS_ID set); the sweep "
                             "shards over every process's devices, process 0 writes the results; OUT must "
                             "be on a file system every process sees")


def _tensorboard_option(parser):
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="also log every metric (median over seeds, per sweep point) to TensorBoard "
                             "event files in DIR as the run goes (needs tensorboardX: pip install "
                             "\"scl[logging]\")")


def _format_option(parser):
    from scl.plots import FORMATS

    parser.add_argument("--format", choices=FORMATS, default="png",
                        help="file format of the figures (default png; pdf and svg are vector, for papers)")


def build_parser() -> argparse.ArgumentParser:
    from scl import __version__

    p = _Parser(prog="scl", description="Simulate self-consuming training loops.")
    p.add_argument("--version", action="version", version=f"scl {__version__}",
                   help="print scl's version and exit")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment config and write results + figures")
    r.add_argument("config", help="YAML config file")
    r.add_argument("-o", "--out", help="output folder (default runs/<name>)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. --set loop.generations=50 (repeatable)")
    r.add_argument("--overwrite", action="store_true", help="replace results already in the folder")
    r.add_argument("--resume", action="store_true", help="continue an unfinished run of this config in the folder")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    _devices_option(r)
    _distributed_option(r)
    _tensorboard_option(r)
    _format_option(r)
    r.set_defaults(fn=cmd_run)
    rs = sub.add_parser("resume", help="continue an interrupted run from its latest checkpoint")
    rs.add_argument("out_dir", help="output folder of the interrupted run (holds checkpoints/)")
    rs.add_argument("--no-progress", action="store_true", help="no progress bar")
    _devices_option(rs)
    _distributed_option(rs)
    _tensorboard_option(rs)
    _format_option(rs)
    rs.set_defaults(fn=cmd_resume)
    sm = sub.add_parser("samples", help="draw samples from a saved generation's models into a figure")
    sm.add_argument("out_dir", help="output folder of a run whose checkpoints are kept (a finished run "
                                    "needs checkpoint.keep_after_finish: true)")
    sm.add_argument("--generation", "-g", type=int, required=True,
                    help="which generation's models to draw from (0 = the fit on real data)")
    sm.add_argument("--n", type=int, default=1000, help="samples per configuration")
    sm.add_argument("--seed", type=int, default=0, help="which seed's models to draw from")
    sm.add_argument("--output", "-o", default=None, help="figure path, its format from the suffix "
                                                         "(default OUT_DIR/samples_gen<g>.<format>)")
    _format_option(sm)
    sm.set_defaults(fn=cmd_samples)
    rf = sub.add_parser("refine", help="locate the knob value where the loop turns from stable to collapsing")
    rf.add_argument("config", help="YAML config file")
    rf.add_argument("--knob", required=True, metavar="PATH", help="the knob to refine, e.g. loop.real_fraction")
    rf.add_argument("--lo", type=float, required=True, help="lower end of the knob range searched")
    rf.add_argument("--hi", type=float, required=True, help="upper end of the knob range searched")
    rf.add_argument("--tol", type=float, required=True, help="precision wanted on the knob (bracket width)")
    rf.add_argument("--metric", default=None, help="metric classified (default: the config's first with a "
                                                   "known collapse direction)")
    rf.add_argument("--collapse-tol", type=float, default=0.1,
                    help="collapsing when last-half mean / generation 0 is beyond 1 +- this (default 0.1)")
    rf.add_argument("--direction", choices=("up", "down"), default=None,
                    help="bad direction of a metric scl does not know (up: collapse makes it grow)")
    rf.add_argument("--points", type=int, default=16, help="knob values per round (one compiled call)")
    rf.add_argument("--rounds", type=int, default=10, help="at most this many rounds")
    rf.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    rf.add_argument("--no-progress", action="store_true", help="no progress bar")
    _devices_option(rf)
    rf.set_defaults(fn=cmd_refine)
    pl = sub.add_parser("plot", help="redraw every figure from saved results")
    pl.add_argument("out_dir", help="output folder holding results.nc")
    _format_option(pl)
    pl.add_argument("--slice", action="append", metavar="DIM=VALUE",
                    help="draw the slice where sweep dim DIM is VALUE (repeatable; default every undrawn "
                         "dim at its first value); file names end in _<DIM><VALUE>")
    pl.set_defaults(fn=cmd_plot)
    s = sub.add_parser("show", help="print the summary of saved results")
    s.add_argument("out_dir", help="output folder holding results.nc")
    s.add_argument("--metric", default=None, help="summarise this metric (default: the first one)")
    s.set_defaults(fn=cmd_show)
    pd = sub.add_parser("prepare-data", help="download a tensorflow-datasets dataset once (needs network) "
                                             "for truth.kind tfds offline")
    pd.add_argument("name", help="tensorflow-datasets name, e.g. mnist, fashion_mnist, cifar10")
    pd.add_argument("--data-dir", required=True, help="folder to write it to (copy it to offline machines)")
    pd.set_defaults(fn=cmd_prepare_data)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:                 # usage error (already printed) or --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    _one_line_warnings()
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"scl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:          # disk full, read-only folder, permissions: one line, no traceback
        where = e.filename or "output"
        print(f"scl: error: {where}: {e.strerror or e}", file=sys.stderr)
        return EXIT_IO
    except KeyboardInterrupt as e:
        print(f"scl: interrupted: {e}" if str(e) else "scl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
