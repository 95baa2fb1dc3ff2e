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


def _out_dir(args, cfg) -> Path:
    return Path(args.out) if args.out else Path("runs") / cfg.name


def cmd_run(args) -> int:
    from scl.checkpoint import remove
    from scl.config import load_config
    from scl.results import RESULTS_FILE
    from scl.simulate import simulate

    cfg = load_config(args.config, args.set or [])
    _split_cpu(args, cfg)
    out = _out_dir(args, cfg)
    if (out / RESULTS_FILE).exists() and not args.overwrite:
        raise ConfigError("--out", f"{out} already holds results; pass --overwrite or choose another -o folder")
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder")
    if args.overwrite:
        remove(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = simulate(cfg, progress=not args.no_progress and cfg.run.progress, out_dir=out, resume=args.resume,
                  callbacks=_callbacks(args))
    return _finish(ds, cfg, out)


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


def _finish(ds, cfg, out: Path) -> int:
    """Write config, results, figures and summary into ``out`` (each atomically) and report."""
    from scl.atomic import write_text
    from scl.plots import plot_all
    from scl.results import save_results
    from scl.summary import summarize

    write_text(out / "config.yaml", cfg.to_yaml())
    path = save_results(ds, out)
    from scl.checkpoint import prune_finished

    prune_finished(out, cfg)      # unless checkpoint.keep_after_finish
    figures = plot_all(ds, out)
    text = summarize(ds)
    write_text(out / "summary.txt", text + "\n")
    print(text)
    print(f"results: {path}")
    for f in figures:
        print(f"figure:  {f}")
    return 0


def cmd_resume(args) -> int:
    from scl.checkpoint import saved_config
    from scl.results import RESULTS_FILE
    from scl.simulate import simulate

    out = Path(args.out_dir)
    cfg = saved_config(out)
    _split_cpu(args, cfg)
    if (out / RESULTS_FILE).exists():
        print(f"scl: nothing to resume: {out / RESULTS_FILE} holds the finished run")
        return 0
    ds = simulate(cfg, progress=not args.no_progress and cfg.run.progress, out_dir=out, resume=True,
                  callbacks=_callbacks(args))
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


def _tensorboard_option(parser):
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="also log every metric (median over seeds, per sweep point) to TensorBoard "
                             "event files in DIR as the run goes (needs tensorboardX: pip install "
                             "\"scl[logging]\")")


def build_parser() -> argparse.ArgumentParser:
    from scl import __version__

    p = argparse.ArgumentParser(prog="scl", description="Simulate self-consuming training loops.")
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
    _tensorboard_option(r)
    r.set_defaults(fn=cmd_run)
    rs = sub.add_parser("resume", help="continue an interrupted run from its latest checkpoint")
    rs.add_argument("out_dir", help="output folder of the interrupted run (holds checkpoints/)")
    rs.add_argument("--no-progress", action="store_true", help="no progress bar")
    _devices_option(rs)
    _tensorboard_option(rs)
    rs.set_defaults(fn=cmd_resume)
    sm = sub.add_parser("samples", help="draw samples from a saved generation's models into a PNG")
    sm.add_argument("out_dir", help="output folder of a run whose checkpoints are kept (a finished run "
                                    "needs checkpoint.keep_after_finish: true)")
    sm.add_argument("--generation", "-g", type=int, required=True,
                    help="which generation's models to draw from (0 = the fit on real data)")
    sm.add_argument("--n", type=int, default=1000, help="samples per configuration")
    sm.add_argument("--seed", type=int, default=0, help="which seed's models to draw from")
    sm.add_argument("--output", "-o", default=None, help="PNG path (default OUT_DIR/samples_gen<g>.png)")
    sm.set_defaults(fn=cmd_samples)
    pl = sub.add_parser("plot", help="redraw every figure from saved results")
    pl.add_argument("out_dir", help="output folder holding results.nc")
    pl.set_defaults(fn=cmd_plot)
    s = sub.add_parser("show", help="print the summary of saved results")
    s.add_argument("out_dir", help="output folder holding results.nc")
    s.add_argument("--metric", default=None, help="summarise this metric (default: the first one)")
    s.set_defaults(fn=cmd_show)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"scl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        print(f"scl: interrupted: {e}" if str(e) else "scl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
