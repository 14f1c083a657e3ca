"""The paired tests against scipy and against what they must say by construction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from rung.check import binom_cdf, holm, mcnemar_exact, paired_bootstrap
from rung.check.paired import paired_ratio_bootstrap


@pytest.mark.parametrize(
    ("k", "n", "p"), [(0, 1, 0.5), (3, 10, 0.5), (12, 40, 0.3), (250, 600, 0.45)]
)
def test_binom_cdf_matches_scipy(k: int, n: int, p: float) -> None:
    assert binom_cdf(k, n, p) == pytest.approx(binomtest(k, n, p, alternative="less").pvalue)


@pytest.mark.parametrize(
    ("wins", "losses", "n", "margin"),
    [(2, 9, 100, 0.0), (5, 5, 60, 0.0), (1, 12, 50, 0.02), (10, 30, 300, 0.05), (0, 7, 7, 0.1)],
)
def test_mcnemar_is_the_binomial_of_the_discordant_pairs(
    wins: int, losses: int, n: int, margin: float
) -> None:
    d = wins + losses
    theta = (1 - margin * n / d) / 2
    expected = binomtest(wins, d, theta, alternative="less").pvalue
    assert mcnemar_exact(wins, losses, n, margin) == pytest.approx(expected)


def test_mcnemar_without_margin_is_the_one_sided_exact_mcnemar() -> None:
    # Half the two-sided exact McNemar p-value when the losses outnumber the wins.
    two_sided = binomtest(2, 11, 0.5).pvalue
    assert mcnemar_exact(2, 9, 100) == pytest.approx(two_sided / 2)


def test_mcnemar_cannot_find_a_drop_larger_than_the_discordance() -> None:
    # 2 discordant items of 100 cannot make a drop beyond 0.02, whatever they say.
    assert mcnemar_exact(0, 2, 100, 0.02) == 1.0
    assert mcnemar_exact(0, 0, 100, 0.0) == 1.0
    # A clear drop: 0 wins, 20 losses of 100 (-0.20) against a margin of 0.02.
    assert mcnemar_exact(0, 20, 100, 0.02) < 1e-4


def test_paired_bootstrap_of_a_shift() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0.6, 0.1, size=200)
    worse = base - 0.1 + rng.normal(0, 0.02, size=200)
    test = paired_bootstrap(base.tolist(), worse.tolist(), margin=0.02, resamples=1000)
    assert test.delta == pytest.approx(-0.1, abs=0.01)
    assert test.ci95[0] < test.delta < test.ci95[1] < -0.02
    assert test.p_value == pytest.approx(1 / 1001)
    same = paired_bootstrap(base.tolist(), base.tolist(), margin=0.02, resamples=1000)
    assert same.delta == 0.0 and same.ci95 == (0.0, 0.0) and same.p_value == 1.0


def test_paired_bootstrap_pairs_the_items() -> None:
    # Noisy items, a tiny constant gap: unpaired it is lost in the noise, paired it is certain.
    rng = np.random.default_rng(5)
    base = rng.normal(0.5, 0.3, size=100)
    test = paired_bootstrap(base.tolist(), (base - 0.05).tolist(), margin=0.01, resamples=500)
    assert test.ci95 == pytest.approx((-0.05, -0.05))
    assert test.p_value < 0.01


def test_paired_ratio_bootstrap_tests_the_ratio_of_sums() -> None:
    # Per item (2·tp, predicted + gold): the baseline finds every entity, the candidate half.
    rng = np.random.default_rng(7)
    entities = rng.integers(1, 5, size=150).astype(float)
    base = (2 * entities, 2 * entities)
    worse = (entities, 2 * entities)
    test = paired_ratio_bootstrap(base, worse, margin=0.05, resamples=500)
    assert test.delta == pytest.approx(-0.5) and test.ci95 == pytest.approx((-0.5, -0.5))
    assert test.p_value == pytest.approx(1 / 501)
    same = paired_ratio_bootstrap(base, base, margin=0.05, resamples=500)
    assert same.delta == 0.0 and same.p_value == 1.0
    # A ratio of sums weighs items by their counts: one big sentence outweighs small ones.
    mixed = paired_ratio_bootstrap(
        ([2.0, 2.0, 20.0], [2.0, 2.0, 20.0]), ([2.0, 2.0, 0.0], [2.0, 2.0, 20.0]), resamples=200
    )
    assert mixed.delta == pytest.approx(4 / 24 - 1.0)


def test_holm_step_down() -> None:
    # Sorted: 0.01*4=0.04, 0.02*3=0.06, 0.03*2=0.06 (monotone), 0.5*1=0.5; reported in input order.
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([]) == []
