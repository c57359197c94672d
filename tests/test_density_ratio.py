"""The density ratio model (gio_spark/density_ratio.py): pure numerics, no Spark."""
import numpy as np
import pytest

from gio_spark.density_ratio import (BINS, MIXES, fit_density_ratio, knn_log_ratio, kth_sq_dist, on_sample_scale,
                                     ratio_bin)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def mixture(seed=0, per_domain=400, domains=5, dim=16):
    """A pool of ``domains`` blobs on the unit sphere, and a target drawn from blob 0."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((domains, dim)))
    label = np.repeat(np.arange(domains), per_domain)
    pool = _unit(centres[label] + 0.3 * rng.standard_normal((len(label), dim)))
    target = _unit(centres[0] + 0.3 * rng.standard_normal((60, dim)))
    return pool, label, target


def test_the_highest_ratios_are_the_targets_kind():
    pool, label, target = mixture()
    sample = pool[np.random.default_rng(1).choice(len(pool), 10 * len(target), replace=False)]
    model = fit_density_ratio(target, sample)
    ratio, logit, knn = model.score(pool)
    top = np.argsort(-ratio, kind="stable")[: (label == 0).sum()]
    assert (label[top] == 0).mean() > 0.8  # random: 0.2
    for score in (logit, knn):  # each part alone ranks the target's blob first too
        assert (label[np.argsort(-score, kind="stable")[:400]] == 0).mean() > 0.8
    assert model.mix in MIXES and set(model.aucs) == {f"{w:g}" for w in MIXES}
    assert model.aucs[f"{model.mix:g}"] == max(model.aucs.values())


def test_a_given_mix_is_used_and_the_scores_do_not_depend_on_the_batch():
    pool, _, target = mixture(seed=2)
    sample = pool[::4]
    model = fit_density_ratio(target, sample, mix=0.0)
    assert model.mix == 0.0 and model.aucs == {}
    whole, logit, _ = model.score(pool)
    # mix 0: the ratio orders pairs as the classifier's logit does
    assert np.array_equal(np.argsort(-whole, kind="stable"), np.argsort(-logit, kind="stable"))
    parts = np.concatenate([model.score(pool[s:s + 37])[0] for s in range(0, len(pool), 37)])
    assert np.allclose(parts, whole, rtol=0, atol=1e-9)


def test_scores_beyond_the_sample_stay_ordered():
    ref = np.sort(np.array([0.0, 1.0, 2.0, 3.0]))
    values = np.array([-5.0, -1.0, 0.0, 1.5, 3.0, 4.0, 9.0])
    scaled = on_sample_scale(ref, values)
    assert np.all(np.diff(scaled) > 0)  # strictly increasing, also past both ends
    assert scaled[2] == pytest.approx(0.125) and scaled[4] == pytest.approx(0.875)  # mid-ranks at the sample's values


def test_kth_distance_skips_the_row_itself_when_asked():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    assert kth_sq_dist(ref[:1], ref, 1)[0] == pytest.approx(1e-10)  # itself, at the clip
    assert kth_sq_dist(ref[:1], ref, 1, skip_self=True)[0] == pytest.approx(1.0)
    assert kth_sq_dist(ref[:1], ref, 2, skip_self=True)[0] == pytest.approx(9.0)
    # nearer the target than the sample: a positive log ratio
    target, sample = np.array([[0.0, 0.1], [0.1, 0.0]]), np.array([[5.0, 5.0], [6.0, 5.0]])
    assert knn_log_ratio(np.zeros((1, 2)), target, sample, 1, 1)[0] > 0


def test_bins_cover_the_scale_and_clip_past_it():
    assert ratio_bin(np.array([-0.5, 0.0, 0.5, 0.99999, 1.0, 7.0])).tolist() == [0, 0, BINS // 2, BINS - 1, BINS - 1,
                                                                                 BINS - 1]


def test_too_few_rows_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 target"):
        fit_density_ratio(np.zeros((1, 3)), np.ones((5, 3)))
    # two target rows: too few to fold, the mix is the middle one
    model = fit_density_ratio(np.array([[1.0, 0.0], [0.9, 0.1]]), np.array([[0.0, 1.0], [0.1, 0.9], [0.5, 0.5]]))
    assert model.mix == 0.5 and model.k_target == 1
