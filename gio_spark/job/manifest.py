"""What a run leaves beside its output: package versions and the report figure."""
from __future__ import annotations

import io
from importlib import metadata

import numpy as np

PACKAGES = ("gio-spark", "pyspark", "jax", "jaxlib", "numpy", "torch", "sentence-transformers", "transformers")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_report(selection: dict, pool_sizes: np.ndarray) -> bytes:
    """PNG: the KL curve, and the sizes of the chosen clusters against all pool clusters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    curve = [selection["initial_kl"], *selection["kl_curve"]]
    ax1.plot(range(len(curve)), curve, marker="." if len(curve) < 60 else None)
    ax1.set_xlabel("points added")
    ax1.set_ylabel("relaxed KL(target || selected)")
    ax1.set_title(f"GIO: {len(curve) - 1} points, stop: {selection['stop_reason']}")
    chosen = np.asarray(selection["chosen_cluster_sizes"], dtype=float)
    bins = np.linspace(0, max(float(pool_sizes.max()), 1.0), 30)
    ax2.hist(pool_sizes, bins=bins, alpha=0.6, label=f"all pool clusters ({len(pool_sizes)})")
    if len(chosen):
        ax2.hist(chosen, bins=bins, alpha=0.8, label=f"chosen ({len(chosen)}, {int(chosen.sum())} pairs)")
    ax2.set_xlabel("pairs per cluster")
    ax2.set_ylabel("clusters")
    ax2.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
