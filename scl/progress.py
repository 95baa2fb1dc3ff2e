"""Progress bar with an ETA (tqdm; notebook-friendly where a notebook front end is present)."""
from __future__ import annotations

import sys


def make_bar(total: int, desc: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar over ``total`` generations (``initial`` already done, e.g. on resume; the ETA
    uses only the rate since start), or a silent stand-in when disabled."""
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _Silent()
    return tqdm(total=total, initial=initial, desc=desc, unit="gen", dynamic_ncols=True, file=sys.stderr,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} gen [{elapsed}<{remaining}{postfix}]")


class _Silent:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def set_description(self, s):
        pass

    def close(self):
        pass
