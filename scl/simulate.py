"""Run a whole experiment: every static variant, every knob-grid point and seed, every generation.

``simulate(cfg)`` returns an ``xarray.Dataset`` (see :mod:`scl.results`).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import numpy as np

from scl.config import Config, load_config
from scl.engine import build_program, flat_inputs, shard_configs
from scl.progress import make_bar
from scl.results import build_dataset


def run_variant(cfg: Config, bar=None, on_chunk: Optional[Callable] = None, timings: dict | None = None):
    """Run one static variant. Returns (metrics {name: np [G+1, C]}, final states).

    ``on_chunk(states, t_next, metrics_so_far)`` is called on the host after every chunk.
    """
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    C = keys.shape[0]
    (keys, knobs), padded = shard_configs((keys, knobs), C)
    G, L = program.generations, program.chunk_size
    t_start = time.perf_counter()
    states, m0 = program.init(keys, knobs)
    out = {name: np.full((G + 1, C), np.nan, np.float32) for name in program.metric_names}
    for name in out:
        out[name][0] = np.asarray(m0[name])[:C]
    t = 1
    first = True
    while t <= G:
        states, m = program.chunk(states, keys, knobs, t)
        m = jax.device_get(m)
        if first and timings is not None:
            timings["first_chunk_s"] = timings.get("first_chunk_s", 0.0) + time.perf_counter() - t_start
        first = False
        done = min(L, G - t + 1)
        for name in out:
            out[name][t:t + done] = m[name][:done, :C]
        t += done
        if bar is not None:
            bar.update(done)
            if program.metric_names:
                name = program.metric_names[0]
                bar.set_postfix_str(f"median {name} {np.nanmedian(out[name][t - 1]):.4g}")
        if on_chunk is not None:
            on_chunk(states, t, out)
    if timings is not None:
        timings["run_s"] = timings.get("run_s", 0.0) + time.perf_counter() - t_start
    if padded != C:
        states = jax.tree_util.tree_map(lambda a: a[:C], states)
    return out, states


def simulate(cfg, overrides=(), progress: bool | None = None):
    """Run ``cfg`` (a Config, YAML path or dict) and return the labelled results.

    Dimensions: one per swept setting (static sweeps first, in config order), then ``seed`` and
    ``generation`` (0 = the fit on real data). One data variable per metric.
    """
    if not isinstance(cfg, Config) or overrides:
        cfg = load_config(cfg, overrides)
    show = cfg.run.progress if progress is None else progress
    variants = cfg.static_variants()
    bar = make_bar(cfg.loop.generations * len(variants), cfg.name, show)
    timings: dict = {}
    results = []
    try:
        for coords, vcfg in variants:
            if len(variants) > 1:
                bar.set_description(f"{cfg.name} " + " ".join(f"{k}={v}" for k, v in coords.items()))
            metrics, _ = run_variant(vcfg, bar, timings=timings)
            results.append((coords, metrics))
    finally:
        bar.close()
    return build_dataset(cfg, results, timings)
