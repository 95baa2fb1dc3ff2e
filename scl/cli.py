"""Command line: ``scl run CONFIG``, ``scl plot OUT_DIR``, ``scl show OUT_DIR``.

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
    from scl.config import load_config
    from scl.plots import plot_all
    from scl.results import RESULTS_FILE, save_results
    from scl.simulate import simulate
    from scl.summary import summarize

    cfg = load_config(args.config, args.set or [])
    out = _out_dir(args, cfg)
    if (out / RESULTS_FILE).exists() and not args.overwrite:
        raise ConfigError("--out", f"{out} already holds results; pass --overwrite or choose another -o folder")
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfg.to_yaml())
    ds = simulate(cfg, progress=not args.no_progress and cfg.run.progress)
    path = save_results(ds, out)
    figures = plot_all(ds, out)
    text = summarize(ds)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(f"results: {path}")
    for f in figures:
        print(f"figure:  {f}")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scl", description="Simulate self-consuming training loops.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment config and write results + figures")
    r.add_argument("config", help="YAML config file")
    r.add_argument("-o", "--out", help="output folder (default runs/<name>)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. --set loop.generations=50 (repeatable)")
    r.add_argument("--overwrite", action="store_true", help="replace results already in the folder")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(fn=cmd_run)
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
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"scl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("scl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
