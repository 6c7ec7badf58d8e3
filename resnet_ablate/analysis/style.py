"""How every figure draws: one hue per family and shortcut option (plain, ResNet A, B, C,
pre-activation, ...), shades of it for depths and other conditions of that kind; one line
style per kind of error, named the same way in every legend and caption; markers where a
line has too few points to be a line; point labels that do not sit on each other.

The same run has the same hue in Fig. 1, Fig. 6, error-vs-depth and the ablation bars.
Matplotlib only (no pyplot): a figure is drawn on a `matplotlib.figure.Figure`, so the
analysis never touches the user's backend.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

# Hue of each kind of net: a matplotlib sequential colormap, shaded light to dark by depth.
HUES = {
    "plain": "Oranges",
    "resnet/A": "Blues",
    "resnet/B": "Greens",
    "resnet/C": "Purples",
    "preresnet": "Reds",
}
# Kinds not listed above (a plugin's shortcut, ResNet-D's avgdown, ...) take one of these,
# chosen by a digest of the kind's name: the same kind gets the same hue in every figure.
SPARE_HUES = ("Greys", "YlOrBr", "PuRd", "BuGn", "YlGn", "PuBu", "OrRd", "GnBu")
PAPER_COLOR = "#c44e52"  # the paper's numbers (diamonds)
SHADES = (0.5, 0.92)  # the lightest and darkest point of a colormap a line uses
ALONE = 0.75  # the shade of a kind drawn once

# Line styles: the paper's Fig. 1/4/6 draw training error thin and dashed, test (or
# validation) error bold and solid. One wording, in every legend and caption.
LINES = {"train": dict(ls="--", lw=1.0), "test": dict(ls="-", lw=2.2),
         "val": dict(ls="-", lw=2.2)}
WORDS = {"train": "training error", "test": "test error", "val": "validation error"}
LINE_WORDS = {"train": "dashed", "test": "solid", "val": "solid"}
MIN_LINE_POINTS = 3  # fewer points than this: markers, so a single evaluation is visible


def kind(family: Any, shortcut: Any) -> str:
    """The colour key of a net: its family, and for ResNets its shortcut option."""
    family = str(family)
    if family == "resnet":
        return f"resnet/{shortcut}"
    return family


def cmap_name(key: str) -> str:
    if key in HUES:
        return HUES[key]
    return SPARE_HUES[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(SPARE_HUES)]


def shade(key: str, i: int, n: int) -> tuple[float, float, float, float]:
    """The i-th of n shades of a kind's hue (darker = later: deeper nets)."""
    from matplotlib import colormaps

    lo, hi = SHADES
    x = ALONE if n <= 1 else lo + (hi - lo) * i / (n - 1)
    return colormaps[cmap_name(key)](x)


def palette(rows: Iterable[dict[str, Any]]) -> dict[str, tuple]:
    """{label: colour} for rows with label, family, shortcut (and depth), in the order
    given: labels of one kind are shades of its hue, ordered by depth."""
    by_kind: dict[str, list[tuple[Any, str]]] = {}
    for r in rows:
        key = kind(r.get("family"), r.get("shortcut"))
        members = by_kind.setdefault(key, [])
        if r["label"] not in [m[1] for m in members]:
            members.append((r.get("depth") or 0, r["label"]))
    out = {}
    for key, members in by_kind.items():
        members.sort(key=lambda m: (m[0], m[1]))
        for i, (_, label) in enumerate(members):
            out[label] = shade(key, i, len(members))
    return out


def frame_palette(frame, label: str = "label") -> dict[str, tuple]:
    """palette() of a runs frame (one row per run; `label` names the column to colour by)."""
    cols = [c for c in ("family", "shortcut", "depth") if c in frame.columns]
    rows = frame[[label, *cols]].rename(columns={label: "label"}).to_dict("records")
    return palette(rows)


def line(kind_: str, n_points: int) -> dict[str, Any]:
    """Matplotlib keywords of an error curve of this kind (train | test | val): with too
    few points for a line, markers (hollow for training error, filled for the others)."""
    out = dict(LINES[kind_])
    if n_points < MIN_LINE_POINTS:
        out.update(_marker(kind_))
    return out


def _marker(kind_: str) -> dict[str, Any]:
    return dict(marker="o", ms=6, mfc="white" if kind_ == "train" else None)


def line_note(kinds: Iterable[str]) -> str:
    """The caption's words for the line styles: 'dashed = training error, solid = test
    error'."""
    return ", ".join(f"{LINE_WORDS[k]} = {WORDS[k]}" for k in kinds)


def add_line_legend(ax, kinds: Iterable[str], markers: bool = False, **legend: Any) -> None:
    """The colour legend of the axes plus one black sample line per kind of error, in
    LINE words (with the markers, where the curves have them): a reader needs no caption
    to tell training from test curves."""
    from matplotlib.lines import Line2D

    handles, names = ax.get_legend_handles_labels()
    kinds = list(kinds)
    if len(kinds) > 1 or kinds == ["train"]:
        for k in kinds:
            handles.append(Line2D([], [], color="black", **LINES[k],
                                  **(_marker(k) if markers else {})))
            names.append(f"{WORDS[k]} ({LINE_WORDS[k]})")
    ax.legend(handles, names, frameon=False, fontsize=8, **legend)


def figure(nrows: int = 1, ncols: int = 1, **subplots: Any):
    """(figure, axes) like pyplot.subplots, without pyplot: a Figure on the Agg canvas
    (PNG and PDF save from it; a notebook displays it), constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=subplots.pop("figsize", None), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def image_bytes(fig, fmt: str = "png", dpi: int = 150) -> bytes:
    """The figure as a file's bytes (png, pdf, ...), cropped to what is drawn."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def save(fig, folder, name: str) -> None:
    """folder/name.png and .pdf, each written atomically."""
    from ..io import atomic_write_bytes

    for ext in ("png", "pdf"):
        atomic_write_bytes(folder / f"{name}.{ext}", image_bytes(fig, ext))


def place_labels(ax, points: list[tuple[float, float, str]], fontsize: float = 7,
                 offset: tuple[float, float] = (4, 4)) -> list[Any]:
    """Annotate each (x, y, text) near its point; a label that would overlap one already
    placed moves up a line until it does not. Returns the annotations."""
    canvas = ax.figure.canvas
    canvas.draw()  # the layout and limits the labels are measured in
    renderer = canvas.get_renderer()
    placed: list[Any] = []
    out = []
    for x, y, text in points:
        dy = offset[1]
        for _ in range(12):
            note = ax.annotate(text, (x, y), fontsize=fontsize, textcoords="offset points",
                               xytext=(offset[0], dy))
            box = note.get_window_extent(renderer)
            if not any(box.overlaps(p) for p in placed):
                break
            note.remove()
            dy += fontsize + 1
        placed.append(box)
        out.append(note)
    return out
