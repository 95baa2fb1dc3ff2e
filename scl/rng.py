"""Random numbers scl needs beyond ``jax.random``: exact bounded integers, and a faster CPU
lowering of JAX's own threefry.

``uniform_below(key, bound, shape)``: integers uniform on {0, ..., bound - 1}, exactly, with one
32-bit word per draw (Lemire 2019, "Fast random integer generation in an interval"): for a word
b, the 64-bit product b * bound splits into hi * 2^32 + lo; hi is the draw, and it is exactly
uniform once the words with lo < (2^32 - bound) mod bound are rejected (fewer than bound in
2^32 of them). Rejected draws are redrawn in a while loop that almost never runs. ``bound`` may
be traced and may differ per element (Floyd's algorithm needs j + 1 for every j).

``jax.random.randint`` spends two words per draw and, on CPU, XLA fuses that work into the
gather that consumes the indices, recomputing it for every coordinate of every gathered row; the
while loop here hands the gather finished indices (the KDE's row picks, Floyd's draws). Inside a
vmapped training step the loop costs more than it saves: neural minibatches use ``randint``.

``use_unrolled_threefry()``: JAX lowers its threefry hash on CPU as a rolled loop of 5 steps
(to keep compile times short); every ``split``, ``fold_in`` or draw then becomes an XLA while
loop, which dominates small vmapped generations. This registers for CPU the unrolled lowering
JAX itself uses on GPU and TPU: the same function, so the same bits; the KDE benchmark runs
1.4x faster and compiles in half the time. ``import scl`` changes nothing in JAX: the engine
calls this when it first builds a program (``scl.engine.build_program``), and from then on the
whole process uses the unrolled lowering. Opt out with ``SCL_ROLLED_THREEFRY=1``; on a JAX
without the hook it does nothing.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp


def _mul_hi_lo(b, c):
    """(hi, lo) 32-bit halves of the 64-bit product of uint32 arrays b and c (no uint64 needed)."""
    mask = jnp.uint32(0xFFFF)
    b_lo, b_hi, c_lo, c_hi = b & mask, b >> 16, c & mask, c >> 16
    p0, p1, p2, p3 = b_lo * c_lo, b_lo * c_hi, b_hi * c_lo, b_hi * c_hi
    middle = (p0 >> 16) + (p1 & mask) + (p2 & mask)
    return p3 + (p1 >> 16) + (p2 >> 16) + (middle >> 16), b * c


def uniform_below(key, bound, shape) -> jax.Array:
    """int32 array of ``shape``, each entry uniform on {0, ..., bound - 1}; ``bound`` >= 1 is a
    scalar or an array broadcastable to ``shape`` (traced is fine; values below 2^31)."""
    shape = tuple(shape)
    bound = jnp.broadcast_to(jnp.asarray(bound).astype(jnp.uint32), shape)
    threshold = (jnp.uint32(0) - bound) % bound            # (2^32 - bound) mod bound

    def draw(k):
        return _mul_hi_lo(jax.random.bits(k, shape, jnp.uint32), bound)

    value, low = draw(key)

    def redraw(state):
        i, value, rejected = state
        new, low = draw(jax.random.fold_in(key, i))
        return i + 1, jnp.where(rejected, new, value), rejected & (low < threshold)

    _, value, _ = jax.lax.while_loop(lambda s: jnp.any(s[2]), redraw, (1, value, low < threshold))
    return value.astype(jnp.int32)


_UNROLLED = False


def unrolled_registered() -> bool:
    """Whether this process lowers threefry with the unrolled rule (use_unrolled_threefry ran)."""
    return _UNROLLED


def use_unrolled_threefry() -> bool:
    """Lower ``threefry2x32`` on CPU with JAX's unrolled rule (same bits). Returns whether it is
    in use. Idempotent; skipped when ``SCL_ROLLED_THREEFRY=1`` or the JAX internals differ."""
    global _UNROLLED
    if _UNROLLED or os.environ.get("SCL_ROLLED_THREEFRY", "") not in ("", "0"):
        return _UNROLLED
    try:
        from jax._src.interpreters import mlir
        try:
            from jax._src.random import threefry2x32 as threefry
        except ImportError:                     # JAX before the random package split
            from jax._src import prng as threefry
        mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_lowering_rule,
                               platform="cpu", inline=False)
    except (ImportError, AttributeError):       # another JAX layout: keep its default lowering
        return False
    _UNROLLED = True
    return True
