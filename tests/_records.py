"""Constructed run records for the section tests' verdict logic: one task ``a`` with accuracy ``acc``."""

DIRS = {"a": {"acc": True}}  # task -> metric -> higher is better


def recs(values):
    """One record per value: ``{"metrics": {"a": {"acc": v}}}``."""
    return [{"metrics": {"a": {"acc": float(v)}}} for v in values]


def result(methods, seeds=(0, 1, 2), **extra):
    """A section result over ``methods`` (label -> records) against a single-task base of accuracy 1."""
    return {"methods": methods, "base": {"a": {"acc": 1.0}}, "dirs": DIRS, "seeds": list(seeds), **extra}
