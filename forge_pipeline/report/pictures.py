"""Pictures for the UI, rendered to PNG bytes with matplotlib's Agg backend (no display needed).

A picture is for reading, never for comparing: nothing here is hashed, billed or written
into an evidence bundle, so the bytes may differ between matplotlib versions. Every
function takes the exact integers the pipeline produced and only draws them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: a server or a CI job has no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from forge_pipeline.execute.primitives.personalized_pagerank import graph_arrays  # noqa: E402
from forge_pipeline.report.money import UCR_PER_CREDIT, credits_text  # noqa: E402

DPI = 80  # a 6x3.5 inch figure is 480x280 pixels: a few tens of KiB inline in the UI
THUMBNAILS_MAX = 16  # a 4x4 contact sheet: enough to see what the filter did, small enough to send


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open figure alive)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def loss_distribution(arguments: dict, output: dict) -> bytes:
    """portfolio_loss: scenarios per loss bin, with each quantile's VaR (dashed) and ES (dotted).

    Bin b holds losses in [b·E/B, (b+1)·E/B), E = Σ exposure (DESIGN §3.3); VaR is the k-th
    loss and ES its version's expected shortfall (@1: tail_sum / tail_count; @2: the exact
    Acerbi–Tasche fraction numerator / denominator), both in the exposures' minor units.
    """
    exposure = sum(obligor["exposure"] for obligor in arguments["obligors"])
    bins = len(output["histogram"])
    width = exposure / bins if exposure else 1
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.bar([index * width for index in range(bins)], output["histogram"], width=width, align="edge",
             color="#8da0cb", edgecolor="#4a5a8a", label="scenarios per loss bin")
    colors = plt.get_cmap("autumn")(np.linspace(0, 0.7, max(1, len(output["value_at_risk"]))))
    for color, (quantile, var) in zip(colors, output["value_at_risk"].items()):
        shortfall = expected_shortfall_value(output["expected_shortfall"][quantile])
        axes.axvline(var, color=color, linestyle="--", label=f"VaR {quantile} = {var:,}")
        axes.axvline(shortfall, color=color, linestyle=":", label=f"ES {quantile} = {shortfall:,.0f}")
    axes.set_yscale("symlog")
    axes.set_xlabel("portfolio loss (minor units)")
    axes.set_ylabel("scenarios")
    axes.set_title(f"loss distribution, {output['scenarios']:,} scenarios")
    axes.legend(fontsize=7)
    return png_bytes(figure)


def expected_shortfall_value(shortfall: dict) -> float:
    """The expected shortfall of either portfolio_loss version as a number to draw (never compared or billed)."""
    if "numerator" in shortfall:  # portfolio_loss@2
        return shortfall["numerator"] / shortfall["denominator"]
    return shortfall["tail_sum"] / shortfall["tail_count"]  # portfolio_loss@1


def contact_sheet(directory: Path) -> bytes:
    """image_filter: the first filtered images of the evidence bundle's `images.npy`, side by side."""
    images = np.load(directory / "images.npy", mmap_mode="r")
    shown = images[:THUMBNAILS_MAX]
    columns = min(4, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(1.1 * columns, 1.1 * rows), squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.axis("off")
        if index < len(shown):
            axes.imshow(shown[index], cmap="gray", vmin=0, vmax=255)
            axes.set_title(f"#{index}", fontsize=7)
    figure.suptitle(f"{len(shown)} of {len(images)} filtered images, {images.shape[1]}x{images.shape[2]}", fontsize=8)
    return png_bytes(figure)


def pagerank_scores(arguments: dict, output: dict) -> bytes:
    """personalized_pagerank: each source's top nodes, score against the node's in-degree."""
    _, in_offsets, _ = graph_arrays(arguments)
    in_degree = np.diff(in_offsets)
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for entry in output["results"]:
        nodes = [node for node, _ in entry["top"]]
        scores = [score / output["score_scale"] for _, score in entry["top"]]
        axes.scatter(in_degree[nodes] + 1, scores, s=14, label=f"source {entry['source']}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("in-degree + 1")
    axes.set_ylabel("personalized PageRank score")
    axes.set_title(f"top nodes of {output['sources']} sources")
    if len(output["results"]) <= 10:
        axes.legend(fontsize=6, ncol=2)
    return png_bytes(figure)


def _workload_picture_drawers() -> dict[str, Callable[[dict, dict, Path], bytes]]:
    return {
        "probabilistic_simulation/portfolio_loss": lambda arguments, output, _: loss_distribution(arguments, output),
        "media_transformation/image_filter": lambda arguments, output, directory: contact_sheet(directory),
        "graph_propagation/personalized_pagerank": lambda arguments, output, _: pagerank_scores(arguments, output),
    }


def workload_picture(primitive: str, arguments: dict, output: dict, directory: Path) -> bytes | None:
    """The picture of a finalized workload's output (`primitive` as `family/name@version`), or
    None for a primitive whose output reads better as its table (sums, keys, neighbours)."""
    drawer = _workload_picture_drawers().get(primitive.split("@")[0])
    return drawer(arguments, output, directory) if drawer else None


def amounts_by(labels: list[str], amounts_ucr: list[int], title: str, color: str) -> bytes:
    """A horizontal bar per label, in credits (amounts are exact µcr; the bar only shows the size)."""
    figure, axes = plt.subplots(figsize=(6, 0.5 + 0.35 * max(1, len(labels))))
    axes.barh(labels, [amount / UCR_PER_CREDIT for amount in amounts_ucr], color=color)
    axes.invert_yaxis()  # the first row of the table on top
    axes.set_xlabel("credits")
    axes.set_title(title)
    for bar, amount in zip(axes.patches, amounts_ucr):
        axes.annotate(f" {credits_text(amount)}", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                      va="center", fontsize=7)
    axes.margins(x=0.3)
    return png_bytes(figure)
