"""Figure content: labels from long_name/units, titles (config, seeds, band, slice), colour norms,
true positions of uneven sweep values, integer generation ticks, no log axis for counts, shared
sample axes, pdf/svg output. Tiny Datasets built in memory; no simulation."""
import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import LogNorm, Normalize, SymLogNorm

import scl.catalog  # noqa: F401  (registers every metric)
from scl import cli, plots
from scl.errors import ConfigError
from scl.registry import METRICS
from scl.results import label_variables, load_results, metric_attrs, save_results

S, G = 8, 6
FRACTIONS = [0.0, 0.1, 0.2, 0.5, 1.0]          # uneven: drawn at their true spacing
KS = [2, 4, 8]
GROWTH = np.array([1.0, 1.5, 2.0, 4.0, 1.0])   # ratio to generation 0 at the last generation, per fraction


def _toy(name="toy", fractions=FRACTIONS):
    """[real_fraction, K, seed, generation]: w2 = c_seed * growth^(g/G) (so every per-seed ratio to
    generation 0 is growth^(g/G) exactly), logdet_ratio < 0, a count, a mode mass pair."""
    rng = np.random.default_rng(0)
    g = np.arange(G + 1)
    growth = np.resize(GROWTH, len(fractions))
    c = rng.uniform(0.2, 0.4, size=(1, len(KS), S, 1))
    ratio = growth[:, None, None, None] ** (g / G)
    dims = ("real_fraction", "K", "seed", "generation")
    shape = (len(fractions), len(KS), S, G + 1)
    w2 = c * ratio
    logdet = -0.5 * g * np.ones(shape) + rng.normal(0, 0.1, shape)
    count = np.broadcast_to(np.maximum(1, 400 // (1 + 60 * g)), shape).astype(float)   # 400 -> 1
    m0 = np.broadcast_to(0.5 + 0.4 * g / G, shape)
    ds = xr.Dataset({"w2": (dims, w2), "logdet_ratio": (dims, logdet), "surviving_categories": (dims, count),
                     "mode_mass_0": (dims, m0), "mode_mass_1": (dims, 1 - m0)},
                    coords={"real_fraction": np.asarray(fractions), "K": np.asarray(KS), "seed": np.arange(S),
                            "generation": g}, attrs={"name": name})
    return label_variables(ds)


def _mesh(ax):
    return [c for c in ax.collections if hasattr(c, "get_coordinates")][0]


def test_every_registered_metric_has_a_long_name_and_cf_units():
    for name, entry in METRICS.items():
        assert entry.traits.get("long_name"), name
        assert entry.traits.get("units") in ("1", "count", "nats"), name
    assert metric_attrs("mode_mass_3") == {**metric_attrs("mode_mass_3"), "long_name": "mass of true mode 3",
                                           "units": "1"}
    assert metric_attrs("surviving_categories")["units"] == "count"


def test_results_variables_carry_their_attrs_and_loading_restores_missing_ones(tmp_path):
    ds = _toy()
    assert ds.w2.attrs["long_name"] == "W2 distance to the truth" and ds.w2.attrs["units"] == "1"
    bare = ds.copy()
    for v in bare.data_vars:
        bare[v].attrs = {}
    save_results(bare, tmp_path)          # as an scl without labels wrote it
    back = load_results(tmp_path)
    for v in ds.data_vars:
        assert back[v].attrs["long_name"] == ds[v].attrs["long_name"]
        assert back[v].attrs["units"] == ds[v].attrs["units"]


def test_phase_diagram_paints_the_median_ratio_to_generation_0_on_a_log_scale_centred_at_1():
    ds = _toy()
    fig = plots.phase_diagram(ds, "w2", at={"K": 4})
    ax = fig.axes[0]
    title = ax.get_title()
    for part in ("toy", "W2 distance to the truth, ratio to generation 0", f"per-seed ratios over {S} seeds",
                 "median", "K=4 (of 2, 4, 8)"):
        assert part in title, (part, title)
    mesh = _mesh(ax)
    norm = mesh.norm
    assert isinstance(norm, LogNorm) and norm.vmin * norm.vmax == pytest.approx(1.0)
    assert norm.vmax >= GROWTH.max()
    painted = np.asarray(mesh.get_array()).reshape(len(FRACTIONS), G + 1)
    expected = GROWTH[:, None] ** (np.arange(G + 1) / G)        # rows in sorted fraction order
    np.testing.assert_allclose(painted, expected, rtol=1e-6)
    bar = fig.axes[1]
    labels = [t.get_text() for t in bar.get_yticklabels()]
    assert "1" in labels and all(lab.replace(".", "", 1).isdigit() for lab in labels), labels
    assert bar.get_ylabel() == "ratio to generation 0"
    xticks = ax.get_xticks()
    assert np.all(xticks == np.round(xticks)) and ax.get_xlabel() == "generation"


def test_uneven_sweep_values_sit_at_their_true_positions_linear_log_symlog_or_as_categories():
    ds = _toy()
    ax = plots.phase_diagram(ds, "w2").axes[0]
    y_edges = _mesh(ax).get_coordinates()[:, 0, 1]
    np.testing.assert_allclose(y_edges, [-0.05, 0.05, 0.15, 0.35, 0.75, 1.25])
    np.testing.assert_allclose(ax.get_yticks(), FRACTIONS)
    assert ax.get_yscale() == "linear"
    logged = _toy(fractions=[0.001, 0.01, 0.1, 1.0, 10.0])
    ax = plots.phase_diagram(logged, "w2").axes[0]
    assert ax.get_yscale() == "log"
    y_edges = _mesh(ax).get_coordinates()[:, 0, 1]
    np.testing.assert_allclose(np.log10(y_edges), [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.001", "0.01", "0.1", "1", "10"]
    zero_then_log = _toy(fractions=[0.0, 0.01, 0.1, 1.0, 5.0])         # 0, then log-spaced: symlog
    ax = plots.phase_diagram(zero_then_log, "w2").axes[0]
    assert ax.get_yscale() == "symlog"
    scale = ax.yaxis.get_transform()                                    # cell edges halfway, in symlog
    edges = scale.transform(np.asarray(_mesh(ax).get_coordinates()[:, 0, 1]))
    centres = scale.transform(np.array([0.0, 0.01, 0.1, 1.0, 5.0]))
    np.testing.assert_allclose(edges[1:-1], (centres[1:] + centres[:-1]) / 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.01", "0.1", "1", "5"]
    squashed = _toy(fractions=[0.0, 0.001, 0.5, 0.7, 1.0])               # unreadable at true spacing
    ax = plots.phase_diagram(squashed, "w2").axes[0]
    np.testing.assert_allclose(_mesh(ax).get_coordinates()[:, 0, 1], np.arange(6) - 0.5)   # categories
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.001", "0.5", "0.7", "1"]
    heat = plots.final_heatmap(logged, "w2", x="K", y="real_fraction").axes[0]
    np.testing.assert_allclose(_mesh(heat).get_coordinates()[0, :, 0], [-0.5, 0.5, 1.5, 2.5])   # categories
    assert [t.get_text() for t in heat.get_xticklabels()] == ["2", "4", "8"]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["0.001", "0.01", "0.1", "1", "10"]
    assert "generation 6" in heat.get_title() and f"over {S} seeds" in heat.get_title()


def test_negative_metric_is_drawn_raw_on_a_symmetric_log_scale_and_counts_never_log():
    ds = _toy()
    mesh = _mesh(plots.phase_diagram(ds, "logdet_ratio").axes[0])
    assert isinstance(mesh.norm, SymLogNorm) and mesh.norm.vmin == -mesh.norm.vmax
    negative = ds.assign(w2=-ds.w2)              # one sign only (a reward): raw, linear
    assert type(_mesh(plots.phase_diagram(negative, "w2").axes[0]).norm) is Normalize
    count_fig = plots.phase_diagram(ds, "surviving_categories")
    mesh = _mesh(count_fig.axes[0])
    assert type(mesh.norm) is Normalize          # a count spanning 400x: still linear
    assert count_fig.axes[1].get_ylabel() == "surviving categories [count]"
    fig = plots.curves(ds, ["w2", "surviving_categories", "logdet_ratio"])
    w2_ax, count_ax, logdet_ax = fig.axes[:3]
    assert count_ax.get_yscale() == "linear" and logdet_ax.get_yscale() == "linear"
    assert w2_ax.get_yscale() == "linear"        # positive but within one decade (x4)
    big = ds.copy()
    big["w2"] = ds.w2 * 10.0 ** ds.generation
    log_ax = plots.curves(big, ["w2"]).axes[0]
    assert log_ax.get_yscale() == "log"
    labels = [t.get_text() for t in log_ax.get_yticklabels()]
    assert "1" in labels and all("$" not in lab and float(lab) > 0 for lab in labels), labels   # plain numbers


def test_curves_label_title_and_legend():
    ds = _toy("quick")
    fig = plots.curves(ds, ["w2", "logdet_ratio"], at={"K": 8})
    ax = fig.axes[0]
    assert ax.get_ylabel() == "W2 distance to the truth [1]"
    assert ax.get_title() == "W2 distance to the truth"
    suptitle = fig._suptitle.get_text()
    for part in ("quick", f"over {S} seeds", "median, 25–75 % band", "K=8 (of 2, 4, 8)"):
        assert part in suptitle, (part, suptitle)
    assert len(fig.legends) == 1 and not any(a.get_legend() for a in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [f"real_fraction={v:g}" for v in FRACTIONS]
    for a in fig.axes[:2]:
        ticks = a.get_xticks()
        assert np.all(ticks == np.round(ticks))
    masses = plots.mode_masses(ds, at={"K": 2})
    assert "per-mode mass" in masses._suptitle.get_text() and "K=2" in masses._suptitle.get_text()
    assert masses.axes[0].get_ylabel() == "mass per true mode [1]"


def test_slice_is_validated_and_scl_plot_draws_it_in_each_format(tmp_path, capsys):
    ds = _toy()[["w2", "mode_mass_0", "mode_mass_1"]]
    assert plots.parse_slice(ds, ["K=4", "real_fraction=0.5"]) == {"K": 4, "real_fraction": 0.5}
    with pytest.raises(ConfigError, match="--slice"):
        plots.parse_slice(ds, ["seed=1"])
    with pytest.raises(ConfigError, match="was not swept"):
        plots.parse_slice(ds, ["K=5"])
    save_results(ds, tmp_path)
    assert cli.main(["plot", str(tmp_path), "--slice", "K=5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scl: error: --slice: K=5 was not swept")
    assert cli.main(["plot", str(tmp_path), "--format", "jpg"]) == 2
    assert "--format" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path), "--slice", "K=8", "--format", "svg"]) == 0
    svg = tmp_path / "phase_diagram_K8.svg"
    assert svg.read_bytes()[:5] == b"<?xml" and b"<svg" in svg.read_bytes()[:2000]
    assert b"K=8 (of 2, 4, 8)" in svg.read_bytes()       # the title is text in the SVG
    paths = plots.plot_all(ds[["w2"]], tmp_path, format="pdf", at={"K": 2})
    assert [p.name for p in paths] == ["phase_diagram_K2.pdf", "curves_K2.pdf"]
    for path in paths:
        assert path.read_bytes()[:5] == b"%PDF-"


def test_sample_panels_share_axes():
    from scl.samples import sample_grid

    rng = np.random.default_rng(1)
    truth = rng.normal(size=(200, 2))
    panels = [(f"real_fraction={f}", rng.normal(size=(200, 2)) * s + f, truth)
              for f, s in ((0.0, 0.1), (0.5, 1.0), (1.0, 3.0))]
    fig = sample_grid(panels, "toy: generation 3")
    axes = [a for a in fig.axes if a.get_visible() and a.axison]
    assert len(axes) == 3
    first = axes[0]
    for a in axes[1:]:
        assert first.get_shared_x_axes().joined(first, a) and first.get_shared_y_axes().joined(first, a)
        assert a.get_xlim() == first.get_xlim() and a.get_ylim() == first.get_ylim()
    one_d = sample_grid([(str(i), rng.normal(size=100) * (i + 1), rng.normal(size=100)) for i in range(2)])
    a, b = one_d.axes[:2]
    assert a.get_shared_x_axes().joined(a, b) and a.get_xlim() == b.get_xlim()


def test_class_shares_are_stacked_medians_summing_to_one_one_panel_per_sweep_point(tmp_path):
    ds = _toy()
    g = ds["generation"].values
    share0 = xr.broadcast(ds.w2, xr.DataArray(0.1 + 0.8 * g / G, dims="generation"))[1]
    for k, v in enumerate([share0, (1 - share0) / 2, (1 - share0) / 2]):
        ds[f"class_share_{k}"] = v.transpose(*ds.w2.dims)
    fig = plots.class_shares(ds, at={"K": 4})
    panels = [a for a in fig.axes if a.collections]
    assert len(panels) == len(FRACTIONS)
    assert panels[0].get_title() == "real_fraction=0" and panels[0].get_xlabel() == "generation"
    assert "share" in panels[0].get_ylabel()
    title = fig._suptitle.get_text()
    assert "class shares, stacked" in title and "K=4 (of 2, 4, 8)" in title and f"{S} seeds" in title
    top = panels[0].collections[-1].get_paths()[0].vertices      # upper edge of the last area: 1
    assert np.allclose(top[:, 1].max(), 1.0) and np.allclose(top[top[:, 0] == G][:, 1].max(), 1.0)
    first = panels[0].collections[0].get_paths()[0].vertices     # class 0 area: height 0.1 -> 0.9
    assert np.isclose(first[first[:, 0] == 0][:, 1].max(), 0.1) and np.isclose(first[first[:, 0] == G][:, 1].max(), 0.9)
    names = [p.name for p in plots.plot_all(ds, tmp_path, at={"K": 4})]
    assert "class_shares_K4.png" in names
