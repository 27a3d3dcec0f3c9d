"""Draws the figure of a bench/put_get.py run: python bench/plot.py RESULTS.json [-o OUT.png].

Kept apart from the benchmark so that measuring never needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import ScalarFormatter

COLORS = {"ember": "#d9480f", "ray": "#1c7ed6"}
GET_TARGET_US = 30.0
SMALL_TARGET_PER_S = 100_000


def by_size(d: dict) -> tuple[list[int], list[float]]:
    pairs = sorted((int(k), v) for k, v in d.items())
    return [k for k, _ in pairs], [v for _, v in pairs]


def label(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("json", help="results written by bench/put_get.py --json")
    p.add_argument("-o", "--out", default="docs/img/put_get.png")
    args = p.parse_args()
    with open(args.json) as f:
        doc = json.load(f)
    res = doc["results"]
    sizes = [int(s) for s in doc["sizes"]]

    fig, (ax_put, ax_get, ax_small) = plt.subplots(
        1, 3, figsize=(15, 5.6), gridspec_kw={"width_ratios": [1.4, 1, 0.8]}
    )

    # put throughput
    ref = doc["reference"]
    for key, style, what in (
        ("memcpy_warm_gbps", "-", "memcpy, warm"),
        ("memcpy_fresh_gbps", "--", "memcpy, fresh memory"),
    ):
        xs, ys = by_size(ref[key])
        ax_put.plot(xs, ys, style, color="grey", lw=1, label=f"{what} (1 thread)")
    for name, r in res.items():
        for key, marker, kind in (("put_warm_gbps", "o-", "warm"), ("put_cold_gbps", "s:", "cold")):
            xs, ys = by_size(r[key])
            ax_put.plot(xs, ys, marker, color=COLORS[name], label=f"{name} put, {kind} store")
    ax_put.set_yscale("log")
    ax_put.set_title("put throughput (higher is better)")
    ax_put.set_ylabel("GB/s (1e9 bytes/s)")

    # get latency
    for name, r in res.items():
        xs, ys = by_size(r["get_us"])
        ax_get.plot(xs, ys, "o-", color=COLORS[name], label=f"{name} get")
    ax_get.axhline(
        GET_TARGET_US, color="black", ls="--", lw=1, label=f"target ({GET_TARGET_US:.0f} us)"
    )
    ax_get.set_yscale("log")
    ax_get.set_ylim(1, 300)
    ax_get.set_title("get latency of an existing object (lower is better)")
    ax_get.set_ylabel("microseconds")

    for ax in (ax_put, ax_get):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [label(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("float64 array size")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)

    # small objects
    names = list(res)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [res[name]["small_put_per_s"], res[name]["small_get_per_s"]]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(2)]
        bars = ax_small.bar(xs, vals, width, color=COLORS[name], label=name)
        ax_small.bar_label(
            bars, [f"{v / 1000:,.0f}k" if v >= 1000 else f"{v:.0f}" for v in vals], fontsize=8
        )
    ax_small.axhline(SMALL_TARGET_PER_S, color="black", ls="--", lw=1, label="target (100k/s)")
    ax_small.set_yscale("log")
    ax_small.set_xticks([0, 1], ["put", "get"])
    ax_small.set_title("small int objects (higher is better)")
    ax_small.set_ylabel("operations per second")
    ax_small.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)

    m = doc.get("machine", {})
    load = doc.get("load", {}).get("other_cores_mean")
    fig.suptitle(
        f"ember vs Ray object store, {m.get('cpus', '?')} CPUs ({m.get('cpu', '')}), "
        f"{doc.get('started', '')}; medians; other processes kept {load} cores busy",
        fontsize=10,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
