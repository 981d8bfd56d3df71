"""Matplotlib figures for TensorBoard: grids (drum patterns), piano rolls, latent maps and latent trajectories."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def grid_rows_figure(
    rows: list[tuple[str, list[np.ndarray]]], row_labels: list[str] | None = None, cell: float = 0.16
) -> Figure:
    """One row of images per ``(title, grids)``; each grid ``[rows, steps]`` in 0..1, drawn side by side.

    Rows may hold different numbers of grids, or none (a small validation set): the figure is as wide as
    the longest row, and a figure without any grid says so rather than failing.
    """
    shown = [grids for _, grids in rows if len(grids)]
    if not shown:
        return _empty_figure("no patterns to show")
    columns = max(len(grids) for grids in shown)
    height, width = shown[0][0].shape
    fig, axes = plt.subplots(
        len(rows),
        columns,
        figsize=(columns * width * cell + 1.0, len(rows) * height * cell + 0.6),
        squeeze=False,
    )
    for r, (title, grids) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(grids):
                ax.axis("off")
                continue
            ax.imshow(grids[c], aspect="auto", origin="lower", cmap="Greys", vmin=0.0, vmax=1.0)
            for beat in range(4, grids[c].shape[1], 4):
                ax.axvline(beat - 0.5, color="tab:blue", lw=0.5, alpha=0.5)
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
                if row_labels is not None:
                    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=5)
    fig.tight_layout()
    return fig


def _empty_figure(message: str) -> Figure:
    """A small figure holding only ``message``: what a panel shows when there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(3, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=8)
    return fig


def plane_projection(points: np.ndarray) -> np.ndarray:
    """Centred codes ``[N, D]`` -> ``[N, 2]``: their two principal axes when D > 2, else the codes themselves;
    zeros stand in for axes that do not exist (D = 1, or fewer than 3 codes, which span fewer than 2 axes)."""
    centred = points - points.mean(0, keepdims=True) if len(points) else points
    if points.shape[1] > 2 and len(points):
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        centred = centred @ vt[:2].T
    plane = np.zeros((len(points), 2), dtype=np.float64)
    plane[:, : min(2, centred.shape[1])] = centred[:, :2]
    return plane


def latent_map_figure(points: np.ndarray, labels: np.ndarray, label_names: list[str]) -> Figure:
    """Scatter of latent codes ``[N, D]`` projected on their two principal axes, coloured by label; any N >= 0
    (one held-out code is one dot at the centre)."""
    centred = plane_projection(points)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    cmap = plt.get_cmap("tab10" if len(label_names) <= 10 else "tab20")
    for index, name in enumerate(label_names):
        mask = labels == index
        if mask.any():
            ax.scatter(centred[mask, 0], centred[mask, 1], s=6, color=cmap(index % cmap.N), label=name)
    ax.set_xlabel("latent PC 1" if points.shape[1] > 2 else "z1")
    ax.set_ylabel("latent PC 2" if points.shape[1] > 2 else "z2")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, markerscale=2, loc="best")
    fig.tight_layout()
    return fig


def piano_roll_figure(
    rows: list[tuple[str, np.ndarray]], part_names: list[str], steps_per_measure: int = 16
) -> Figure:
    """One piano roll per ``(title, sounding)``, ``sounding [P, 128, T]`` in 0..1, parts in their own
    colours on one pitch axis cropped to the pitches used; measure lines every ``steps_per_measure``."""
    used = np.flatnonzero(np.any([roll.max(axis=(0, 2)) > 0.5 for _, roll in rows], axis=0))
    low, high = (int(used.min()) - 2, int(used.max()) + 3) if len(used) else (48, 84)
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.6 * len(rows) + 0.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (title, roll) in zip(axes[:, 0], rows, strict=True):
        image = np.ones((high - low, roll.shape[-1], 3))
        for part in range(roll.shape[0]):
            cells = roll[part, low:high] > 0.5
            image[cells] = cmap(part % cmap.N)[:3]
        ax.imshow(image, aspect="auto", origin="lower", extent=(0, roll.shape[-1], low, high))
        for measure in range(steps_per_measure, roll.shape[-1], steps_per_measure):
            ax.axvline(measure, color="grey", lw=0.6)
        ax.set_ylabel(title, fontsize=7)
        ax.tick_params(labelsize=6)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i % cmap.N)) for i in range(len(part_names))]
    axes[0, 0].legend(handles, part_names, fontsize=6, loc="upper right", ncol=len(part_names))
    fig.tight_layout()
    return fig


def trajectory_rows_figure(rows: dict[str, np.ndarray], x_label: str, y_label: str) -> Figure:
    """One image per ``title: trajectory``, each ``[D, K]``: latent dimensions (``y_label``) against frames
    (``x_label``), side by side on one colour scale (-3 to 3)."""
    figure = Figure(figsize=(3.0 * len(rows), 2.6))
    axes = figure.subplots(1, len(rows), squeeze=False)[0]
    for ax, (title, trajectory) in zip(axes, rows.items(), strict=True):
        ax.imshow(trajectory, aspect="auto", origin="lower", cmap="coolwarm", vmin=-3, vmax=3)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
    figure.tight_layout()
    return figure


def latent_sensitivity_figure(sensitivity: np.ndarray, roughness: dict[str, float] | None = None) -> Figure:
    """Bars of the latent sensitivity ``[L]`` (output distance per unit move of each latent dimension), titled
    with its mean and the interpolation ``roughness`` beside it (by feature name): a latent the decoder ignores
    reads smooth and flat at once."""
    figure = Figure(figsize=(6.0, 3.0))
    ax = figure.subplots()
    ax.bar(np.arange(len(sensitivity)), sensitivity, color="tab:purple")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("distance per unit move")
    parts = [f"sensitivity: mean {float(np.mean(sensitivity)) if len(sensitivity) else 0.0:.3f}"]
    parts += [f"roughness {name} {value:.3f}" for name, value in (roughness or {}).items()]
    ax.set_title("; ".join(parts), fontsize=8)
    figure.tight_layout()
    return figure
