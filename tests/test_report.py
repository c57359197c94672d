"""report.png's layout: its margins are fixed (no "tight" bounding box, which draws the figure
twice), so nothing may reach past the figure's edges or into the title, for GIO's clusters and
the density ratio, with many examples and many named targets. The inputs are those of two demo
runs (tests/fixtures/report_inputs.json), grown."""
import copy
import json

import pytest

from gio_spark.job.report import report_figure

from .conftest import FIXTURES

INPUTS = json.loads((FIXTURES / "report_inputs.json").read_text())


def many_examples(inputs: dict, times: int) -> dict:
    """The same run with ``times`` as many example clusters or bins (ranks continued)."""
    inputs = copy.deepcopy(inputs)
    examples = inputs["summary"]["examples"]
    inputs["summary"]["examples"] = [{**e, "rank": e["rank"] + i * 1000} for i in range(times) for e in examples]
    return inputs


def several_targets(inputs: dict, n: int) -> dict:
    """GIO's run as if it had ``n`` named targets with long names (a headline of several lines)."""
    inputs = copy.deepcopy(inputs)
    names = {f"t{i}": f"a-rather-long-target-name-number-{i}" for i in range(n)}
    inputs["summary"]["targets"] = {key: {"name": name, "pairs": 100, "clusters": 5, "taken_by_others": 1}
                                    for key, name in names.items()}
    selection = inputs["selection"]
    selection["targets"] = {key: {"name": name, "initial_kl": selection["initial_kl"], "kl_curve": selection["kl_curve"],
                                  "gio_own_stop": None, "ranks": [0, 1, 2]} for key, name in names.items()}
    return inputs


CASES = {
    "GIO's clusters, twelve named targets, twelve times the examples": many_examples(several_targets(INPUTS["gio"], 12), 12),
    "density ratio, twelve times the examples": many_examples(INPUTS["density_ratio"], 12),
}


@pytest.mark.parametrize("case", CASES)
def test_everything_drawn_lies_inside_the_figure_and_below_the_title(case):
    import matplotlib.pyplot as plt

    args = CASES[case]
    fig = report_figure(**args)
    try:
        renderer = fig.canvas.get_renderer()
        width, height = fig.get_size_inches() * fig.dpi
        drawn = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)  # inches to pixels
        assert drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 <= width and drawn.y1 <= height, (drawn, width, height)
        title = fig._suptitle.get_window_extent(renderer)
        panels = [ax.get_tightbbox(renderer) for ax in fig.axes]  # the three panels and a twin axis
        text = [t.get_window_extent(renderer) for t in fig.texts if t is not fig._suptitle]  # k-means, examples
        assert len(panels) == 4 and max(p.y1 for p in panels) < title.y0
        assert len(text) == 1 and text[0].y1 < min(p.y0 for p in panels)
    finally:
        plt.close(fig)
