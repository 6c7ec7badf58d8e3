"""The analysis in a notebook: importing it never touches the user's matplotlib backend,
`ra.figures.<name>(ra.read_runs(dirs))` returns (figure, caption) that renders and saves without a
display; every figure colours a family and shortcut option alike, says its line styles in
one wording, marks single evaluation points and keeps labels apart."""
import colorsys
import io

import matplotlib
import matplotlib.figure
import pytest

import resnet_ablate as ra
from conftest import run_python, train_inproc
from resnet_ablate.analysis import style

# Four tiny real runs (plain/ResNet-A at 20 and 56 layers, digits): one evaluation each.
RUNS = ("plain20", "plain56", "resnet20-A", "resnet56-A")


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    runs = tmp_path_factory.mktemp("nb") / "runs"
    for model in RUNS:
        train_inproc(f"model={model}", "iterations=4", "batch_size=32", "eval_every=4",
                     "log_every=2", "wandb=disabled", "progress=off", f"runs_dir={runs}",
                     f"run_id={model}")
    return ra.read_runs([str(runs)])  # a notebook passes strings


def test_importing_the_analysis_leaves_the_backend_alone(collected, tmp_path):
    """In a fresh interpreter with a backend of the user's (as Jupyter sets its inline one),
    and no display: the backend is the same after importing every analysis module and
    building a figure, and the figure saves."""
    code = f"""
import matplotlib
matplotlib.use("svg")
import resnet_ablate as ra
import resnet_ablate.analysis.report, resnet_ablate.analysis.tables
fig, caption = ra.figures.fig1(ra.read_runs([{str(tmp_path / "runs")!r}]))
fig.savefig({str(tmp_path / "fig1.png")!r})
import matplotlib.pyplot as plt
print(matplotlib.get_backend(), type(fig).__name__, len(plt.get_fignums()))
"""
    import shutil

    shutil.copytree(collected_dir(collected), tmp_path / "runs")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    proc = run_python(code, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["svg", "Figure", "0"]  # not Agg; not in pyplot's list
    assert (tmp_path / "fig1.png").read_bytes()[:4] == b"\x89PNG"


def collected_dir(c):
    from pathlib import Path

    return Path(c.runs["source"].iloc[0]).parent


@pytest.mark.parametrize("name", ["fig1", "fig4", "fig6", "fig7", "error_vs_depth",
                                  "error_vs_macs", "error_vs_params"])
def test_notebook_api_returns_a_figure_and_its_caption(collected, name):
    fig, caption = getattr(ra.figures, name)(collected)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert "n = 1 seed(s) per condition" in caption
    for fmt, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF")):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        assert buf.getvalue()[:4] == magic
    assert ra.figures.FIGURE_BUILDERS[name] is getattr(ra.figures, name)
    # digits runs: Table 6 (CIFAR-10's numbers) is skipped, as the CLI's report skips it
    with pytest.raises(ra.figures.MissingRuns, match="cifar10 numbers; these runs are on "
                                                     "digits"):
        ra.tables.table6(collected)


def _hue(color) -> float:
    r, g, b = matplotlib.colors.to_rgb(color)
    return colorsys.rgb_to_hsv(r, g, b)[0]


def _lines(fig):
    """(legend label, colour, line style, marker) of every legend entry of a figure (lines
    and error bars)."""
    out = []
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            line = handle.lines[0] if hasattr(handle, "lines") else handle
            out.append((label, line.get_color(), line.get_linestyle(), line.get_marker()))
    return out


def test_one_hue_per_family_and_shortcut_option_in_every_figure(collected):
    """plain-* in the oranges, ResNet (A) in the blues, in every figure; depths are shades
    of the hue (deeper = darker); the same net the same colour in Fig. 1 and Fig. 6."""
    hue = {"plain": _hue(style.shade("plain", 0, 1)), "ResNet": _hue(style.shade("resnet/A", 0, 1))}
    assert abs(hue["plain"] - hue["ResNet"]) > 0.2
    seen = {}
    for name in ("fig1", "fig6", "fig7", "error_vs_macs", "error_vs_params"):
        fig, _ = getattr(ra.figures, name)(collected)
        labelled = [(label, color) for label, color, *_ in _lines(fig) if "error (" not in label]
        assert labelled, name
        for label, color in labelled:
            family = "plain" if label.startswith("plain") else "ResNet"
            assert abs(_hue(color) - hue[family]) < 0.06, (name, label, color)
            if name in ("fig1", "fig6") and label in seen:
                assert matplotlib.colors.same_color(seen[label], color), label
            seen.setdefault(label, color)
    fig, _ = ra.figures.fig6(collected)
    shades = {label: color for label, color, *_ in _lines(fig)}
    assert sum(matplotlib.colors.to_rgb(shades["plain-56"])) < \
        sum(matplotlib.colors.to_rgb(shades["plain-20"]))  # deeper = darker
    fig, _ = ra.figures.error_vs_depth(collected)
    texts = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert set(texts) == {"plain", "ResNet"}
    colors = {style.kind("plain", "-"): style.shade("plain", 0, 1)}
    assert style.frame_palette(collected.runs.assign(label=["a", "b", "c", "d"]))["a"] != \
        colors  # (the palette is a mapping of labels)
    assert style.kind("resnet", "B") != style.kind("resnet", "A") and \
        style.cmap_name("resnet/avgdown") == style.cmap_name("resnet/avgdown")


def test_line_styles_are_named_the_same_way_everywhere(collected):
    fig, caption = ra.figures.fig6(collected)
    assert "dashed = training error, solid = test error" in caption
    assert fig._suptitle.get_text() == "Fig. 6: dashed = training error, solid = test error"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[-2:] == ["training error (dashed)", "test error (solid)"]
    legend = fig.axes[0].get_legend()
    styles = {(t.get_text(), h.get_linestyle()) for h, t in zip(legend.legend_handles,
                                                                legend.get_texts())
              if "(" in t.get_text()}
    assert styles == {("training error (dashed)", "--"), ("test error (solid)", "-")}
    # Fig. 4's bold curve is the paper's ImageNet val set: the test split here (a held-out
    # validation split of training images is not drawn), in the same words.
    fig4, caption4 = ra.figures.fig4(collected)
    assert "dashed = training error, solid = test error" in caption4


def test_a_single_evaluation_point_draws_markers(collected):
    """Each run evaluated once: its test-error 'line' is one point, drawn as a marker."""
    fig, _ = ra.figures.fig1(collected)
    test_panel = fig.axes[1]
    points = [line for line in test_panel.get_lines() if not line.get_label().startswith("_")
              and "error (" not in line.get_label()]
    assert len(points) == 2  # plain-20 and plain-56
    assert points and all(len(line.get_xdata()) == 1 and line.get_marker() == "o"
                          for line in points)


def test_overlapping_labels_are_offset():
    fig, ax = style.figure()
    ax.plot([1, 2], [1, 2])
    notes = style.place_labels(ax, [(1.5, 1.5, "20"), (1.5, 1.5, "56"), (1.5, 1.5, "110")])
    renderer = fig.canvas.get_renderer()
    boxes = [n.get_window_extent(renderer) for n in notes]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert [n.xyann[1] for n in notes] == [4, 12, 20]  # moved up a line each
