"""Notebook 11's chain (lib.studies.quality.quality) on positive controls whose answers are known: notebook 08's dimpled
worlds, where the steepness s is set by construction. The mapping from a claim's effect back to s recovers it, and a
series of worlds that grows steeper is a trend toward DMM that the trend rows find."""
import numpy as np
import pandas as pd
import pytest

from lib.inference.rules import Verdict
from lib.studies.quality import quality
from lib.studies.worlds import worlds
from tests.test_worlds import settings

STEEP = (2.0, 4.0, 8.0, 16.0)


@pytest.mark.parametrize("cid", ["3", "4"])
@pytest.mark.parametrize("s", [0.5, 3.0, 7.8, 20.0])
def test_steepness_of_inverts_the_analytic_effects(cid, s):
    assert worlds.steepness_of(cid, np.exp(worlds.analytic_effects(s)[cid])) == pytest.approx(s, rel=1e-9)


def test_steepness_of_a_share_above_the_flat_one_is_zero():
    assert worlds.steepness_of("4", 1 / worlds.stats.random_share_median(16, 784)) == 0.0
    assert worlds.steepness_of("4", 2 / worlds.stats.random_share_median(16, 784)) == 0.0
    with pytest.raises(ValueError, match="claim 3 or 4"):
        worlds.steepness_of("5b", 1.0)


@pytest.fixture(scope="module")
def series():
    """Clipped-free attacks on dimpled worlds of growing steepness, the same images at every point (one seed), as
    records of one series whose quality grows with s (x = log10 s)."""
    frames = []
    for s in STEEP:
        r = worlds.world_records(worlds.dimpled_world(s, 40, seed=5), settings(), "world", seed=5)
        # the claims of notebook 11 read the clipped attacks (3, 4, 5b) and the unclipped ones (1b): the same here
        both = [r.assign(clip=True), r.assign(clip=False)]
        frames += [f.assign(series="autoencoder", point=f"s={s:g}", x=np.log10(s), quality=10 ** -np.log10(s))
                   for f in both]
    return pd.concat(frames, ignore_index=True)


def test_the_steepness_scale_recovers_each_world(series):
    rows = quality.point_rows(series)
    table = quality.point_table(rows, series)
    steep = quality.steepness_table(table, series).set_index("point")
    for s in STEEP:
        row = steep.loc[f"s={s:g}"]
        # claim 3 with the random ratio measured on the world's own attacks: the tangent on/off ratio, which is s
        assert row["s (claim 3, measured reference)"] == pytest.approx(s, rel=0.05)
        # claim 4 (the gradient's share: exact in this world) with its interval around the true s
        assert row["s (claim 4) low"] <= s * 1.05 and s * 0.95 <= row["s (claim 4) high"]


def test_a_series_growing_steeper_is_a_trend_toward_dmm(series):
    rows = quality.point_rows(series)
    table, fits = quality.trends(rows, series, n_boot=300)
    v = dict(zip(table["claim_id"], table["verdict"]))
    assert v["3"] == Verdict.SUPPORTED and v["4"] == Verdict.SUPPORTED and v["1b"] == Verdict.SUPPORTED
    # claim 3's effect is s / R: a tenfold steeper world multiplies it by 10
    t3 = table[table["claim_id"] == "3"].iloc[0]
    assert t3["effect"] == pytest.approx(10, rel=0.05)
    assert all(isinstance(r, str) and r for r in table["reaches"])
