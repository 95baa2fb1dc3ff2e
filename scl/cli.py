"""Command line: ``scl run CONFIG``, ``scl resume OUT_DIR``, ``scl plot OUT_DIR``, ``scl show OUT_DIR``,
``scl samples OUT_DIR --generation G``.

Invalid input ends with one line ``scl: error: <field>: <what is allowed>`` and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scl.errors import ConfigError

EXIT_USAGE = 2
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


FIGURE_PATTERNS = ("phase_diagram.png", "curves.png", "mode_mass.png", "final_*.png", "samples_gen*.png")


def _out_dir(args, cfg) -> Path:
    """``-o OUT``, else ``runs/<name>``: a name that would leave ``runs/`` (absolute, ``..``,
    empty) is refused, not sanitised, so no run silently lands in an unexpected folder."""
    if args.out:
        return Path(args.out)
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

    from scl.atomic import remove_stale
    from scl.lock import folder_lock

    cfg = load_config(args.config, args.set or [])
    _split_cpu(args, cfg)
    out = _out_dir(args, cfg)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder")
    with folder_lock(out, "--out"):
        if (out / RESULTS_FILE).exists() and not args.overwrite:
            raise ConfigError("--out", f"{out} already holds results; pass --overwrite or choose another -o folder")
        remove_stale(out)
        if args.overwrite:
            remove(out)
        ds = simulate(cfg, progress=not args.no_progress and cfg.run.progress, out_dir=out, resume=args.resume)
        return _finish(ds, cfg, out, overwrite=args.overwrite)


def _split_cpu(args, cfg):
    """One XLA device per core for large sweeps (scl.devices), before JAX computes anything."""
    from scl.devices import devices_for, use_cpu_devices

    use_cpu_devices(args.cpu_devices if args.cpu_devices is not None else devices_for(cfg))


def _finish(ds, cfg, out: Path, overwrite: bool = False) -> int:
    """Write config, results, figures and summary into ``out`` (each atomically) and report.

    ``config.yaml`` is renamed into place only after the new results are: a failure (disk full)
    leaves the previous config and results together. ``overwrite``: figures of the previous run
    that this one does not redraw are removed."""
    from scl.atomic import atomic_path, write_text
    from scl.plots import plot_all
    from scl.results import save_results
    from scl.summary import summarize

    with atomic_path(out / "config.yaml") as config_tmp:
        config_tmp.write_text(cfg.to_yaml())
        path = save_results(ds, out)
    figures = plot_all(ds, out)
    if overwrite:
        new = {Path(f).name for f in figures}
        for pattern in FIGURE_PATTERNS:
            for old in out.glob(pattern):
                if old.name not in new:
                    old.unlink(missing_ok=True)
    text = summarize(ds)
    write_text(out / "summary.txt", text + "\n")
    print(text)
    print(f"results: {path}")
    for f in figures:
        print(f"figure:  {f}")
    return 0


def cmd_resume(args) -> int:
    from scl.atomic import remove_stale
    from scl.checkpoint import saved_config
    from scl.lock import folder_lock
    from scl.results import RESULTS_FILE, damage
    from scl.simulate import simulate

    out = Path(args.out_dir)
    cfg = saved_config(out)
    _split_cpu(args, cfg)
    with folder_lock(out):
        remove_stale(out)
        if (out / RESULTS_FILE).exists():
            why = damage(out / RESULTS_FILE)
            if why is None:
                print(f"scl: nothing to resume: {out / RESULTS_FILE} holds the finished run")
                return 0
            print(f"scl: {out / RESULTS_FILE} is damaged ({why}); rebuilding it from the checkpoints",
                  file=sys.stderr)
        ds = simulate(cfg, progress=not args.no_progress and cfg.run.progress, out_dir=out, resume=True)
        return _finish(ds, cfg, out)


def cmd_samples(args) -> int:
    from scl.samples import plot_generation

    path = plot_generation(args.out_dir, args.generation, n=args.n, seed=args.seed, path=args.output)
    print(f"figure: {path}")
    return 0


def cmd_plot(args) -> int:
    from scl.plots import plot_all
    from scl.results import load_results

    ds = load_results(args.out_dir)
    for f in plot_all(ds, Path(args.out_dir)):
        print(f"figure: {f}")
    return 0


def cmd_show(args) -> int:
    from scl.results import load_results
    from scl.summary import summarize

    print(summarize(load_results(args.out_dir), args.metric))
    return 0


def _devices_option(parser):
    parser.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                        help="split the CPU into N XLA devices the sweep shards over (default: one per "
                             "core, at most one per 128 configurations; ignored on GPU/TPU and when "
                             "XLA_FLAGS sets the host device count)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scl", description="Simulate self-consuming training loops.")
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
    r.set_defaults(fn=cmd_run)
    rs = sub.add_parser("resume", help="continue an interrupted run from its latest checkpoint")
    rs.add_argument("out_dir")
    rs.add_argument("--no-progress", action="store_true", help="no progress bar")
    _devices_option(rs)
    rs.set_defaults(fn=cmd_resume)
    sm = sub.add_parser("samples", help="draw samples from a saved generation's models into a PNG")
    sm.add_argument("out_dir")
    sm.add_argument("--generation", "-g", type=int, required=True)
    sm.add_argument("--n", type=int, default=1000, help="samples per configuration")
    sm.add_argument("--seed", type=int, default=0, help="which seed's models to draw from")
    sm.add_argument("--output", "-o", default=None, help="PNG path (default OUT_DIR/samples_gen<g>.png)")
    sm.set_defaults(fn=cmd_samples)
    pl = sub.add_parser("plot", help="redraw every figure from saved results")
    pl.add_argument("out_dir")
    pl.set_defaults(fn=cmd_plot)
    s = sub.add_parser("show", help="print the summary of saved results")
    s.add_argument("out_dir")
    s.add_argument("--metric", default=None)
    s.set_defaults(fn=cmd_show)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
