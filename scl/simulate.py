"""Run a whole experiment: every static variant, every knob-grid point and seed, every generation.

``simulate(cfg)`` returns an ``xarray.Dataset`` (see :mod:`scl.results`).
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Optional

import jax
import numpy as np

from scl.config import Config, load_config
from scl.distributed import is_multiprocess, is_primary, to_host
from scl.engine import build_program, shard_configs
from scl.grid import grid_of
from scl.callbacks import ChunkEvent, close_all
from scl.progress import make_bar, variant_report
from scl.results import build_dataset


def run_variant(cfg: Config, bar=None, on_chunk: Optional[Callable] = None, timings: dict | None = None,
                checkpoint=None, emit: Optional[Callable] = None):
    """Run one static variant. Returns (metrics {name: np [G+1, C]}, final states).

    ``on_chunk(states, t_next, metrics_so_far)`` is called on the host after every chunk.
    ``emit(t0, t1, {name: np [t1-t0, C]}, restored)`` too, with the generations just computed
    (generation 0 first; on resume the restored ones first, ``restored=True``).
    ``checkpoint``: a :class:`scl.checkpoint.VariantCheckpoint` to resume from and save into.
    """
    keep_models = checkpoint is not None and checkpoint.keep_models
    cfg = _with_batch_size(cfg, keep_models, bar)
    grid = grid_of(cfg)
    program = build_program(cfg, grid.lam_max, keep_models=keep_models)
    keys, knobs = grid.inputs()
    C = keys.shape[0]
    abstract = jax.eval_shape(program.init, keys, knobs)[0] if checkpoint is not None else None
    (keys, knobs), padded = shard_configs((keys, knobs), C)

    def unpad(tree, axis=0):
        """Drop the configurations added to fill the devices (checkpoints hold exactly C)."""
        if padded == C or tree is None:
            return tree
        return jax.tree_util.tree_map(lambda a: a[:C] if axis == 0 else a[:, :C], tree)

    G, L = program.generations, program.chunk_size
    t_start = time.perf_counter()
    if bar is not None:
        bar.compiling()
    resume = None
    if checkpoint is not None:
        counted = checkpoint.steps_done()   # already on the bar (its ``initial``)
        resume = checkpoint.restore(abstract, program.metric_names, C)
        if bar is not None and (resume.t - 1 if resume else 0) != counted:
            bar.skip((resume.t - 1 if resume else 0) - counted)   # fell back to an older one
    if resume is None:
        states, m0 = program.init(keys, knobs)
        out = {name: np.full((G + 1, C), np.nan, np.float32) for name in program.metric_names}
        for name in out:
            out[name][0] = to_host(m0[name])[:C]
        t = 1
        if checkpoint is not None:
            host_states = to_host(states)        # whole, on every process (gathered from all)
            checkpoint.save(unpad(host_states), 0, 1, {k: v[None, :C] for k, v in to_host(m0).items()},
                            jax.tree_util.tree_map(lambda a: a[None, :C], host_states.model))
        if emit is not None:
            emit(0, 1, {name: v[0:1].copy() for name, v in out.items()}, False)
    else:
        t, out = resume.t, resume.metrics
        states, _ = shard_configs(jax.tree_util.tree_map(jax.numpy.asarray, resume.states), C)
        if emit is not None:
            emit(0, t, {name: v[:t].copy() for name, v in out.items()}, True)
    first = True
    while t <= G:
        t0 = t
        states, m = program.chunk(states, keys, knobs, t)
        models = None
        if keep_models:
            m, models = m
        m = unpad(to_host(m), axis=1)
        if first and timings is not None:
            timings["first_chunk_s"] = timings.get("first_chunk_s", 0.0) + time.perf_counter() - t_start
        first = False
        done = min(L, G - t + 1)
        for name in out:
            out[name][t:t + done] = m[name][:done]
        t += done
        if bar is not None:
            bar.update(done)
        if emit is not None:
            emit(t0, t, {name: v[t0:t].copy() for name, v in out.items()}, False)
        if checkpoint is not None:
            checkpoint.save(unpad(to_host(states)), t0, t, m, unpad(to_host(models), axis=1))
        if on_chunk is not None:
            on_chunk(states, t, out)
    if checkpoint is not None:
        checkpoint.close()
    if timings is not None:
        timings["run_s"] = timings.get("run_s", 0.0) + time.perf_counter() - t_start
    return out, unpad(to_host(states) if is_multiprocess() else states)


def _with_batch_size(cfg: Config, keep_models: bool, bar=None) -> Config:
    """``cfg`` with ``run.config_batch_size`` chosen from the compiled program's memory analysis
    when it is unset and the grid does not fit at once (:mod:`scl.auto_batch`); the choice is
    printed (progress bar, else stderr)."""
    from scl.auto_batch import choose_batch

    choice = choose_batch(cfg, keep_models)
    if choice is None or choice.batch_size is None:
        return cfg
    if getattr(bar, "inner", None) is not None:      # a visible bar: write above it
        bar.write(f"scl: {choice.message()}")
    else:
        print(f"scl: {choice.message()}", file=sys.stderr)
    return cfg.set("run.config_batch_size", choice.batch_size)


def simulate(cfg, overrides=(), progress: bool | None = None, out_dir=None, resume: bool = False,
             callbacks=(), distributed: bool = False):
    """Run ``cfg`` (a Config, YAML path or dict) and return the labelled results.

    Dimensions: one per swept setting (static sweeps first, in config order), then ``seed`` and
    ``generation`` (0 = the fit on real data). One data variable per metric.

    ``out_dir``: checkpoint after every chunk into ``out_dir/checkpoints`` (unless
    ``checkpoint.enabled`` is false); ``resume=True`` continues an unfinished run found there
    (refused if its config differs). Ctrl-C then stops after the current chunk, saved, and raises
    :class:`scl.checkpoint.RunInterrupted`.

    ``callbacks``: functions called after every chunk with a :class:`scl.callbacks.ChunkEvent`
    (the metrics of the generations just computed); e.g. ``scl.tensorboard.TensorBoard(dir)``.
    Their ``close()``, where they have one, is called when the run ends.

    With a progress bar, the first metric's median over seeds at the last generation is printed
    per sweep point after each static variant. Checkpoints stay in ``out_dir`` (``scl run``
    removes them once results are written, unless ``checkpoint.keep_after_finish``).

    ``distributed=True``: join JAX's distributed runtime first (:func:`scl.distributed.initialize`,
    before any JAX work in this process; every process calls ``simulate`` with the same config and
    ``out_dir`` on a shared file system). The configurations are sharded over every process's
    devices; every process returns the whole Dataset; only process 0 shows progress, calls
    ``callbacks`` and holds the folder's lock.
    """
    if distributed:
        from scl.distributed import initialize

        initialize()
    if not isinstance(cfg, Config) or overrides:
        cfg = load_config(cfg, overrides)
    from scl.budget import check_memory

    check_memory(cfg)            # refuse, with the estimate, a run that cannot fit
    show = (cfg.run.progress if progress is None else progress) and is_primary()
    callbacks = [callbacks] if callable(callbacks) else list(callbacks or ())
    if not is_primary():
        callbacks = []
    variants = cfg.static_variants()
    lock = contextlib.nullcontext()
    if out_dir is not None and cfg.checkpoint.enabled:
        from scl.lock import run_lock

        lock = run_lock(out_dir)
    with lock:
        return _simulate(cfg, show, variants, out_dir, resume, callbacks)


def _simulate(cfg, show, variants, out_dir, resume, callbacks):
    run_ckpt = None
    if out_dir is not None and cfg.checkpoint.enabled:
        from scl.checkpoint import RunCheckpoint

        run_ckpt = RunCheckpoint(out_dir, cfg, resume=resume)
    initial = run_ckpt.generations_done() if run_ckpt else 0
    bar = make_bar(cfg.loop.generations * len(variants), cfg.name, show, initial=initial)
    timings: dict = {}
    results = []
    guard = run_ckpt.interrupt.installed() if run_ckpt else contextlib.nullcontext()
    try:
        with guard:
            for i, (coords, vcfg) in enumerate(variants):
                if len(variants) > 1:
                    bar.set_description(f"{cfg.name} " + " ".join(f"{k}={v}" for k, v in coords.items()))
                ckpt = run_ckpt.variants[i] if run_ckpt else None
                points = grid_of(vcfg).configurations()
                emit = _emitter(callbacks, i, coords, points, vcfg) if callbacks else None
                metrics, _ = run_variant(vcfg, bar, timings=timings, checkpoint=ckpt, emit=emit)
                results.append((coords, metrics))
                report = variant_report(metrics, points, coords, cfg.loop.generations)
                if report:
                    bar.write(report)
    except BaseException:
        if run_ckpt is not None:     # disk full, crash, Ctrl-C: no half-written orbax step left behind
            from scl.checkpoint import remove_unfinished

            for ckpt in run_ckpt.variants:
                with contextlib.suppress(Exception):
                    ckpt.close()
            if is_primary():
                remove_unfinished(out_dir)
        raise
    finally:
        bar.close()
        close_all(callbacks)
        for ckpt in run_ckpt.variants if run_ckpt else ():
            ckpt.close()      # let pending writes finish (idempotent)
    ds = build_dataset(cfg, results, timings)
    from scl.summary import warn_nonfinite

    warn_nonfinite(ds)
    return ds


def _emitter(callbacks, index, coords, points, vcfg):
    def emit(t0, t1, metrics, restored):
        event = ChunkEvent(index, dict(coords), (t0, t1), metrics, points, vcfg.loop.generations,
                           restored, vcfg)
        for cb in callbacks:
            cb(event)
    return emit

