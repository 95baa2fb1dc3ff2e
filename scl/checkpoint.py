"""Per-chunk orbax checkpoints: resume an interrupted run bit-identically, read back any generation.

Layout under ``<out>/checkpoints/``::

    config.yaml            the run's config; a resume compares it field by field with the new one
    variant_000/           one folder per static variant, in ``cfg.static_variants()`` order
      state/<t>/           full loop state (models + mixer buffers, leaves [C, ...]) before
                           generation t (t = G+1: finished); the ``checkpoint.keep`` newest
      history/<t>/         one chunk, generations t0 .. t-1, all kept: metrics {name: [k, C]} and
                           the model states of generations that are multiples of
                           ``checkpoint.stride`` (leaves [k', C, ...])

Each step also holds a JSON ``meta`` item with CRC32 checksums of its arrays: a step that cannot be
read or whose checksum differs is reported (:class:`CheckpointWarning`) and an older one is used.
PRNG keys are not saved: root keys follow from ``cfg.seed`` and generation keys from
``fold_in(root, t)``. Saves run in orbax's background thread, overlapping the next chunk.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional

import jax
import numpy as np
import yaml

from scl.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"
# Settings that change neither the numbers nor their shapes: a resume may change them.
FREE_SETTINGS = ("run.", "checkpoint.", "name")


class CheckpointWarning(UserWarning):
    """A checkpoint could not be used (corrupt, truncated, inconsistent); an older one is used."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C: the run stopped after a chunk whose checkpoint is written."""

    def __init__(self, done: int, total: int, out_dir, label: str = ""):
        from scl.distributed import is_multiprocess

        self.done, self.total, self.out_dir = done, total, Path(out_dir)
        how = " --distributed (every process)" if is_multiprocess() else ""
        super().__init__(f"stopped after {done} of {total} generations{label}; checkpoint saved; "
                         f"resume with: scl resume {out_dir}{how}")


def checksum(tree) -> int:
    """CRC32 over the shapes, dtypes and bytes of every leaf of a host pytree."""
    crc = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        a = np.ascontiguousarray(leaf)
        crc = zlib.crc32(f"{a.shape}{a.dtype}".encode(), crc)
        crc = zlib.crc32(a.view(np.uint8).reshape(-1) if a.size else b"", crc)
    return crc


def _flatten(d, prefix="") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "sweep":
            out.update(_flatten(v, key + "."))
        elif k == "sweep" and isinstance(v, dict):
            out.update({f"sweep.{p}": vals for p, vals in v.items()})
        else:
            out[key] = v
    return out


def config_differences(saved: dict, new: dict) -> list[str]:
    """``["loop.n: 50 there, 60 here", ...]`` over settings that change results."""
    a, b = _flatten(saved), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key.startswith(FREE_SETTINGS):
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            diffs.append(f"{key}: {a.get(key, '<unset>')!r} there, {b.get(key, '<unset>')!r} here")
    return diffs


_WRITE_FAILURES = ("os_error_code", "No space left", "Read-only file system", "Permission denied")


def _quiet_orbax(record) -> bool:
    """Drop orbax's per-save "Waiting for previous save" notice (it breaks the progress bar line);
    the save cost is measured in scripts/bench_checkpoint.py instead. Also drop its logged
    tracebacks of failed writes (disk full, read-only): scl reports those in one line."""
    text = str(record.msg)
    if text.startswith("Waiting for previous save"):
        return False
    try:
        text = record.getMessage() + (repr(record.exc_info[1]) if record.exc_info else "")
    except Exception:  # noqa: BLE001
        return True
    return not any(w in text for w in _WRITE_FAILURES)


def _manager(directory: Path, keep: Optional[int], asynchronous: bool, read_only: bool = False,
             barrier_prefix: Optional[str] = None):
    """An orbax CheckpointManager. ``barrier_prefix``: names its barriers in a multi-process run
    (each manager alive at once needs its own: two saving step t would share "step t" barriers)."""
    import logging

    import orbax.checkpoint as ocp

    absl_logger = logging.getLogger("absl")
    if _quiet_orbax not in absl_logger.filters:
        absl_logger.addFilter(_quiet_orbax)

    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=asynchronous, create=not read_only,
        cleanup_tmp_directories=not read_only,
        multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=barrier_prefix))
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)  # orbax needs absolute paths


@contextlib.contextmanager
def _writing(directory):
    """Turn orbax/tensorstore write failures (disk full, read-only, permissions: raised as
    ValueError with an ``os_error_code``) into one :class:`OSError` naming the checkpoint folder."""
    try:
        yield
    except OSError as e:
        if e.filename or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(directory)) from None
    except Exception as e:  # noqa: BLE001 - orbax re-raises tensorstore errors as ValueError etc.
        import errno
        import os
        import re

        text = str(e)
        code = re.search(r"os_error_code='?(\d+)", text)
        if code:
            code = int(code.group(1))
            raise OSError(code, os.strerror(code), str(directory)) from None
        for number, words in ((errno.ENOSPC, "No space left"), (errno.EROFS, "Read-only file system"),
                              (errno.EACCES, "Permission denied")):
            if words in text:
                raise OSError(number, os.strerror(number), str(directory)) from None
        raise


def _host(tree):
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def _zeros_like(abstract, lead: tuple = ()):
    return jax.tree_util.tree_map(lambda a: np.zeros(lead + tuple(a.shape), a.dtype), abstract)


class Resume(NamedTuple):
    t: int                  # next generation to run (G+1: nothing left)
    states: Any             # host loop state, leaves [C, ...]
    metrics: dict           # {name: np [G+1, C]} filled for generations < t


class VariantCheckpoint:
    """Checkpoints of one static variant (one compiled program, C configurations)."""

    def __init__(self, directory, cfg, interrupt: Optional["Interrupt"] = None, label: str = ""):
        self.dir = Path(directory)
        self.label = label
        self.cfg = cfg
        self.options = cfg.checkpoint
        self.generations = cfg.loop.generations
        self.interrupt = interrupt
        self._state = self._history = None
        self._opened = 0

    @property
    def keep_models(self) -> bool:
        return self.options.stride > 0

    def _open(self):
        if self._state is None:
            with _writing(self.dir):
                self._opened += 1            # barrier names unique per variant, kind and opening
                tag = f"{self.dir.name}_{self._opened}"
                self._state = _manager(self.dir / "state", self.options.keep, self.options.asynchronous,
                                       barrier_prefix=f"{tag}_state")
                self._history = _manager(self.dir / "history", None, self.options.asynchronous,
                                         barrier_prefix=f"{tag}_history")

    def steps_done(self) -> int:
        """Generations done according to the newest state step (0 if none); no validation."""
        steps = _committed_steps(self.dir / "state")
        return max(steps) - 1 if steps else 0

    # ---------------------------------------------------------------- restore

    def _read_history(self, step: int, names) -> tuple[dict, dict]:
        import orbax.checkpoint as ocp

        meta = self._history.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        k = meta["t_end"] - meta["t0"]
        C = meta["configs"]
        target = {name: np.zeros((k, C), np.float32) for name in names}
        got = self._history.restore(step, args=ocp.args.Composite(
            values=ocp.args.StandardRestore(target)))["values"] if names else {}
        if checksum(got) != meta["crc_metrics"] or sorted(got) != sorted(meta["metric_names"]):
            raise ValueError("metrics checksum mismatch")
        return meta, got

    def restore(self, abstract_state, names, C: int) -> Optional[Resume]:
        """The newest consistent (state, metrics) pair, or None to start from generation 0.

        ``abstract_state``: the loop state's ShapeDtypeStructs (leaves [C, ...])."""
        import orbax.checkpoint as ocp

        self._open()
        G = self.generations
        metrics = {name: np.full((G + 1, C), np.nan, np.float32) for name in names}
        covered = 0                                   # generations 0 .. covered-1 have metrics
        for step in sorted(self._history.all_steps()):
            try:
                meta, got = self._read_history(step, names)
                if meta["t0"] != covered or meta["t_end"] != step or meta["configs"] != C:
                    raise ValueError(f"covers generations {meta['t0']}..{meta['t_end'] - 1}, "
                                     f"expected to start at {covered}")
            except Exception as e:  # noqa: BLE001 - any unreadable step is reported, not fatal
                self._warn("history", step, e)
                break
            for name in names:
                metrics[name][meta["t0"]:meta["t_end"]] = got[name]
            covered = step
        target = _zeros_like(abstract_state)
        chosen = None
        for step in sorted(self._state.all_steps(), reverse=True):
            if step > covered:
                self._warn("state", step, ValueError(f"the metrics of generations {covered}..{step - 1} are "
                                                     "missing (their write was interrupted)"))
                continue
            try:
                got = self._state.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
                if checksum(got["state"]) != got["meta"]["crc"]:
                    raise ValueError("checksum mismatch")
            except Exception as e:  # noqa: BLE001
                self._warn("state", step, e)
                continue
            chosen = Resume(step, got["state"], metrics)
            break
        start = chosen.t if chosen else 0
        for mgr in (self._state, self._history):   # drop everything after the restart point
            for step in mgr.all_steps():
                if step > start:
                    mgr.delete(step)
        if chosen is None:
            return None
        for name in names:
            metrics[name][start:] = np.nan
        return chosen

    def _warn(self, kind, step, err):
        msg = f"checkpoint {self.dir / kind / str(step)} is unusable ({type(err).__name__}: " \
              f"{str(err).splitlines()[0][:200] if str(err) else 'unreadable'}); using an older one"
        warnings.warn(msg, CheckpointWarning, stacklevel=3)

    # ---------------------------------------------------------------- save

    def save(self, states, t0: int, t_end: int, metrics: dict, models=None):
        """Save after generations t0 .. t_end-1: their metrics {name: [k, C]} and model states
        (leaves [k, C, ...], or None), plus the full loop state ``states`` (leaves [C, ...])."""
        import orbax.checkpoint as ocp

        self._open()
        metrics = {name: np.asarray(v[: t_end - t0], np.float32) for name, v in metrics.items()}
        C = next(iter(metrics.values())).shape[1] if metrics else int(jax.tree_util.tree_leaves(states)[0].shape[0])
        kept = [g for g in range(t0, t_end) if self.keep_models and g % self.options.stride == 0]
        items = {"values": ocp.args.StandardSave(metrics)} if metrics else {}   # "metrics": reserved by orbax
        meta = {"t0": t0, "t_end": t_end, "configs": C, "metric_names": sorted(metrics),
                "crc_metrics": checksum(metrics), "model_generations": kept}
        if kept and models is not None:
            idx = np.asarray(kept) - t0                  # stride applied on the host
            host_models = jax.tree_util.tree_map(lambda a: np.asarray(a)[idx], jax.device_get(models))
            meta["crc_models"] = checksum(host_models)
            items["models"] = ocp.args.StandardSave(host_models)
        else:
            meta["model_generations"] = []
        host_states = _host(states)
        with _writing(self.dir):
            self._history.save(t_end, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), **items))
            self._state.save(t_end, args=ocp.args.Composite(
                state=ocp.args.StandardSave(host_states),
                meta=ocp.args.JsonSave({"t": t_end, "crc": checksum(host_states)})))
        from scl.distributed import stop_requested

        if self.interrupt is not None and t_end <= self.generations and stop_requested(self.interrupt.requested):
            self.close()
            raise RunInterrupted(t_end - 1, self.generations, self.interrupt.out_dir, self.label)

    def close(self):
        """Wait for pending writes and release the managers."""
        managers, self._state, self._history = (self._state, self._history), None, None
        for mgr in managers:
            if mgr is not None:
                try:
                    with _writing(self.dir):
                        mgr.wait_until_finished()
                finally:
                    mgr.close()


def _committed_steps(directory: Path) -> list[int]:
    """Finished orbax steps (an unfinished write is a ``<step>.orbax-checkpoint-tmp-*`` folder)."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


class Interrupt:
    """First Ctrl-C: finish the current chunk, save, stop. Second Ctrl-C: stop at once."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.requested = False

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            import sys

            print("\nscl: stopping after the current chunk (Ctrl-C again to abort now)", file=sys.stderr)

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class RunCheckpoint:
    """Checkpoints of a whole run in ``<out_dir>/checkpoints`` (one folder per static variant)."""

    def __init__(self, out_dir, cfg, resume: bool = False):
        self.out_dir = Path(out_dir)
        self.dir = self.out_dir / CHECKPOINT_DIR
        self.cfg = cfg
        self.interrupt = Interrupt(self.out_dir)
        variants = cfg.static_variants()
        self.variants = [VariantCheckpoint(self.dir / f"variant_{i:03d}", vcfg, self.interrupt,
                                           f" of variant {i + 1}/{len(variants)} ("
                                           + ", ".join(f"{k}={v}" for k, v in coords.items()) + ")"
                                           if len(variants) > 1 else "")
                         for i, (coords, vcfg) in enumerate(variants)]
        saved = self.dir / CONFIG_FILE
        if saved.exists():
            diffs = config_differences(_read_saved(saved), cfg.to_dict())
            if diffs:
                raise ConfigError("config", f"{self.out_dir} holds a checkpoint of a different config "
                                  f"({'; '.join(diffs[:4])}{'; ...' if len(diffs) > 4 else ''}); "
                                  "choose another folder or pass --overwrite")
            done = self.generations_done()
            if done and not resume:
                raise ConfigError("resume", f"{self.out_dir} holds an unfinished run of this config "
                                  f"({done} of {self.total} generations done); pass --resume to continue "
                                  "it (scl resume OUT_DIR) or --overwrite to start again")
        from scl.atomic import write_text
        from scl.distributed import is_primary

        if is_primary():                 # one writer in a multi-process run (scl.distributed)
            write_text(saved, cfg.to_yaml())

    @property
    def total(self) -> int:
        return self.cfg.loop.generations * len(self.variants)

    def generations_done(self) -> int:
        return sum(v.steps_done() for v in self.variants)


def _read_saved(path: Path) -> dict:
    """The mapping in ``checkpoints/config.yaml``; garbage there is one ConfigError."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        detail = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ConfigError("out_dir", f"{path} is damaged ({detail}); it cannot be resumed: "
                          "rerun with scl run CONFIG --overwrite") from None
    if not isinstance(data, dict):
        raise ConfigError("out_dir", f"{path} is damaged (not a config mapping); it cannot be resumed: "
                          "rerun with scl run CONFIG --overwrite")
    return data


def remove(out_dir):
    """Delete the checkpoints of ``out_dir`` (``scl run --overwrite``); one ConfigError if that fails."""
    directory = Path(out_dir) / CHECKPOINT_DIR
    if not directory.exists():
        return
    errors = []
    shutil.rmtree(directory, onerror=lambda fn, p, exc: errors.append((p, exc[1])))
    if directory.exists():
        where, err = errors[0] if errors else (directory, OSError("still present"))
        raise ConfigError("--overwrite", f"could not delete the old checkpoints in {directory} "
                          f"({getattr(err, 'strerror', None) or err}: {where}); fix that folder's "
                          "permissions or delete it, then run again")


def remove_unfinished(out_dir) -> None:
    """Delete orbax's unfinished ``<step>.orbax-checkpoint-tmp-*`` folders under ``out_dir``."""
    directory = Path(out_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return
    for p in list(directory.glob("variant_*/*/*")):
        if ".orbax-checkpoint-tmp" in p.name:
            shutil.rmtree(p, ignore_errors=True)


def prune_finished(out_dir, cfg) -> bool:
    """After the results of ``out_dir`` are written: delete its checkpoints (loop states, metrics and
    model histories) unless ``cfg.checkpoint.keep_after_finish``; ``checkpoints/config.yaml`` stays
    (``scl resume`` then says there is nothing to resume). Returns True if anything was deleted."""
    if cfg.checkpoint.keep_after_finish:
        return False
    root = Path(out_dir) / CHECKPOINT_DIR
    removed = False
    for d in sorted(root.glob("variant_*")) if root.is_dir() else ():
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            removed = True
    return removed


def _removed_after_finish(out_dir) -> bool:
    from scl.results import RESULTS_FILE

    root = Path(out_dir) / CHECKPOINT_DIR
    return (root / CONFIG_FILE).exists() and not any(root.glob("variant_*")) \
        and (Path(out_dir) / RESULTS_FILE).exists()


def saved_config(out_dir):
    """The Config a checkpoint folder was written by."""
    from scl.config import Config

    path = Path(out_dir) / CHECKPOINT_DIR / CONFIG_FILE
    if not path.exists():
        raise ConfigError("out_dir", f"no checkpoints in {out_dir} (expected {path})")
    data = _read_saved(path)
    try:
        return Config.from_dict(data)
    except ConfigError as e:
        raise ConfigError("out_dir", f"{path} is damaged ({e}); it cannot be resumed: "
                          "rerun with scl run CONFIG --overwrite") from None


# -------------------------------------------------------------------- reading generations back

@dataclass
class GenerationModels:
    """Model states of one generation for every configuration of one static variant.

    ``states``: the family's state pytree, leaves [C, ...]; ``points[c]``: configuration c's
    coordinates ({swept knob: value, ..., "seed": s}); ``static``: the variant's static sweep
    coordinates; ``knobs``: the knob tree ({section: {name: [C]}}); ``config``: its Config."""

    generation: int
    static: dict
    points: list
    states: Any
    knobs: dict
    config: Any


def load_generation(out_dir, generation: int) -> list[GenerationModels]:
    """Model states of ``generation`` for all configurations, one entry per static variant."""
    import orbax.checkpoint as ocp

    from scl.engine import build_program
    from scl.grid import grid_of

    cfg = saved_config(out_dir)
    G = cfg.loop.generations
    if not 0 <= generation <= G:
        raise ConfigError("generation", f"must be in [0, {G}], got {generation}")
    out = []
    for i, (coords, vcfg) in enumerate(cfg.static_variants()):
        directory = Path(out_dir) / CHECKPOINT_DIR / f"variant_{i:03d}" / "history"
        if not directory.is_dir():
            if _removed_after_finish(out_dir):
                raise ConfigError("generation", f"the checkpoints of the finished run in {out_dir} were removed "
                                  "when its results were written; rerun it with --set "
                                  "checkpoint.keep_after_finish=true to read generations back")
            raise ConfigError("generation", f"no checkpoints of variant {coords or i} in {directory}")
        mgr = _manager(directory, None, False, read_only=True)
        try:
            step = next((s for s in sorted(mgr.all_steps()) if s > generation), None)
            if step is None:
                raise ConfigError("generation", f"generation {generation} not reached yet in {out_dir}")
            meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            kept = meta["model_generations"]
            if generation not in kept:
                raise ConfigError("generation", f"generation {generation} was not kept "
                                  f"(checkpoint.stride = {cfg.checkpoint.stride}; 0 keeps none)")
            grid = grid_of(vcfg)
            keys, knobs = grid.inputs()
            program = build_program(vcfg, grid.lam_max)
            abstract = jax.eval_shape(program.init, keys, knobs)[0].model
            target = _zeros_like(abstract, (len(kept),))
            models = mgr.restore(step, args=ocp.args.Composite(models=ocp.args.StandardRestore(target)))["models"]
            if checksum(models) != meta["crc_models"]:
                raise ConfigError("generation", f"checkpoint {directory / str(step)} is corrupt (checksum mismatch)")
        finally:
            mgr.close()
        j = kept.index(generation)
        states = jax.tree_util.tree_map(lambda a: a[j], models)
        out.append(GenerationModels(generation, coords, grid.configurations(), states, grid.knobs, vcfg))
    return out
