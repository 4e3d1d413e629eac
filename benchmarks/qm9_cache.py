"""QM9 load times: the first load parses qm9pack's CSV, the second reads the processed cache (≥ 10× faster).

Run: ``python benchmarks/qm9_cache.py`` (uses a fresh temporary cache folder, so the first load
really parses; prints a table and the speed-up).
"""
from __future__ import annotations

import tempfile
import time

from mtl.data import load


def timed_load(cache: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    bundle = load("qm9", cache=cache)
    return time.perf_counter() - t0, bundle.info


def main() -> None:
    import torch_geometric  # noqa: F401  (imported before timing: only parsing vs the cache is measured)

    with tempfile.TemporaryDirectory(prefix="qm9-bench-") as cache:
        first, info1 = timed_load(cache)
        second, info2 = timed_load(cache)
    assert info1["parsed"] and not info2["parsed"], "the first load must parse and the second read the cache"
    sizes = info1["sizes"]
    print(f"qm9: {sum(sizes.values())} molecules, split {sizes}")
    print(f"{'load':<18}{'seconds':>10}")
    print(f"{'first (parse CSV)':<18}{first:>10.3f}")
    print(f"{'second (cache)':<18}{second:>10.3f}")
    ratio = first / second
    print(f"speed-up: {ratio:.1f}x ({'OK' if ratio >= 10 else 'BELOW'} the 10x target)")


if __name__ == "__main__":
    main()
