"""What each option of the loop promises, including where the reference gets it wrong."""
import numpy as np
import pytest

from gio_spark.gio import GIOConfig, knn_kl, relaxed_kl, select


def mixture(seed=0, dim=8, pool_n=120, target_n=60):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(4, dim))
    labels = rng.integers(0, 4, size=pool_n)
    pool = centers[labels] + rng.normal(0, 0.4, size=(pool_n, dim))
    target = centers[rng.integers(0, 2, size=target_n)] + rng.normal(0, 0.4, size=(target_n, dim))
    return pool.astype(np.float32), target.astype(np.float32), labels


def far_apart(seed=1, dim=4):
    rng = np.random.default_rng(seed)
    target = rng.normal(0, 0.3, size=(40, dim)).astype(np.float32)
    pool = (rng.normal(0, 0.3, size=(30, dim)) + 10).astype(np.float32)
    return pool, target


def w_of(pool, init, result):
    return np.concatenate([init, pool[result.selected_indices]])


def test_kl_curve_is_the_relaxed_kl_of_the_growing_set():
    pool, target, _ = mixture()
    init = np.random.default_rng(3).uniform(-1, 1, size=(5, 8)).astype(np.float32)
    r = select(pool, target, init=init, max_iter=12, stop_criterion="data_size")
    assert len(r.selected_indices) == 12
    for i in (0, 5, 11):
        w = np.concatenate([init, pool[r.selected_indices[: i + 1]]])
        assert r.kl_curve[i] == pytest.approx(relaxed_kl(target, w), rel=1e-5)
    assert r.initial_kl == pytest.approx(relaxed_kl(target, init), rel=1e-5)


def test_discard_nearest_curve_matches_estimator():
    pool, target, _ = mixture()
    init = np.random.default_rng(3).uniform(-1, 1, size=(5, 8)).astype(np.float32)
    for optimizer in ("gradient", "exact"):
        r = select(pool, target, init=init, max_iter=10, stop_criterion="data_size",
                   discard_nearest_for_xy=True, optimizer=optimizer)
        assert len(r.selected_indices) == 10
        assert r.final_kl == pytest.approx(relaxed_kl(target, w_of(pool, init, r), discard_nearest_for_xy=True), rel=1e-5)


def test_max_iter_adds_exactly_that_many_points():
    pool, target, _ = mixture()
    for n in (0, 1, 7):
        r = select(pool, target, max_iter=n, stop_criterion="data_size")
        assert len(r.selected_indices) == n
        assert r.stop_reason == "max_iter"


def test_data_size_stops_at_the_fraction():
    pool, target, _ = mixture()
    r = select(pool, target, max_iter=1000, stop_criterion="data_size", max_data_size=0.1)
    assert len(r.selected_indices) == 12
    assert r.stop_reason == "data_size"
    assert len(set(r.selected_indices.tolist())) == 12


def test_exhausted_pool_returns_the_result():
    pool, target, _ = mixture(pool_n=6)
    r = select(pool, target, max_iter=50, stop_criterion="min_difference", min_difference=-1e9)
    assert sorted(r.selected_indices.tolist()) == list(range(6))
    assert r.stop_reason == "pool_exhausted"
    assert len(r.kl_curve) == 6


def test_increase_stops_before_the_first_increase():
    pool, target, _ = mixture()
    r = select(pool, target, max_iter=500)
    assert r.stop_reason == "increase"
    assert np.all(np.diff(np.concatenate([[r.initial_kl], r.kl_curve])) <= 0)


def test_sequential_increase_tolerance_stops():
    pool, target = far_apart()
    r = select(pool, target, stop_criterion="sequential_increase_tolerance", max_sequential_increases=3, max_iter=100)
    assert r.stop_reason == "sequential_increase_tolerance"
    assert len(r.selected_indices) == 3  # three tolerated increases, the fourth stops
    assert np.all(np.diff(np.concatenate([[r.initial_kl], r.kl_curve])) > 0)


def test_max_resets_stops_after_the_resets():
    pool, target = far_apart()
    r = select(pool, target, stop_criterion="max_resets", max_resets=2, max_iter=100)
    assert r.stop_reason == "max_resets"
    assert r.n_resets == 2
    assert len(r.selected_indices) == 0
    assert r.iterations == 3


def test_resets_allow_duplicates_after_a_reset():
    pool, target, _ = mixture()
    plain = select(pool, target, max_iter=500)
    r = select(pool, target, resets_allowed=True, max_resets=1, max_iter=500)
    assert r.stop_reason == "increase"
    assert r.n_resets == 1
    assert r.iterations == len(r.selected_indices) + 2  # one rejected candidate per reset, one at the stop
    np.testing.assert_array_equal(r.selected_indices[: len(plain.selected_indices)], plain.selected_indices)
    assert len(set(r.selected_indices.tolist())) < len(r.selected_indices)


def test_min_kl_keeps_the_point_that_crosses():
    pool, target, _ = mixture()
    full = select(pool, target, max_iter=30, stop_criterion="data_size")
    threshold = float(full.kl_curve[9]) + 1e-6
    r = select(pool, target, max_iter=30, stop_criterion="min_kl", min_kl=threshold)
    assert r.stop_reason == "min_kl"
    assert len(r.selected_indices) == 10
    assert r.final_kl < threshold <= r.kl_curve[-2]


def test_min_difference_keeps_only_big_enough_steps():
    pool, target, _ = mixture()
    r = select(pool, target, max_iter=200, stop_criterion="min_difference", min_difference=0.05)
    assert r.stop_reason == "min_difference"
    steps = -np.diff(np.concatenate([[r.initial_kl], r.kl_curve]))
    assert np.all(steps >= 0.05)


def test_random_init_rows_are_never_selected_again():
    pool, target, _ = mixture()
    r = select(pool, target, random_init_pct=0.25, max_iter=200, stop_criterion="min_difference", min_difference=-1e9)
    assert len(r.init_indices) == 30
    assert not set(r.init_indices.tolist()) & set(r.selected_indices.tolist())
    assert r.stop_reason == "pool_exhausted"
    assert len(r.chosen_indices) == len(pool)


def test_seed_makes_random_options_reproducible():
    pool, target, _ = mixture()
    opts = dict(v_init="jump", random_restart_prob=0.3, random_init_pct=0.1, max_iter=20, stop_criterion="data_size")
    a, b = select(pool, target, seed=5, **opts), select(pool, target, seed=5, **opts)
    c = select(pool, target, seed=6, **opts)
    np.testing.assert_array_equal(a.selected_indices, b.selected_indices)
    np.testing.assert_array_equal(a.kl_curve, b.kl_curve)
    assert not np.array_equal(a.init_indices, c.init_indices)


def test_three_times_the_steps_on_the_first_iteration():
    pool, target, _ = mixture()
    init = np.random.default_rng(3).uniform(-1, 1, size=(5, 8)).astype(np.float32)
    one = select(pool, target, init=init, max_iter=1, stop_criterion="data_size", grad_desc_iter=4, v_init="jump")
    two = select(pool, target, init=init, max_iter=2, stop_criterion="data_size", grad_desc_iter=4, v_init="jump")
    assert one.gd_steps == 12
    assert two.gd_steps == 16


def test_exact_optimizer_is_never_worse_than_gradient():
    pool, target, _ = mixture()
    grad = select(pool, target, max_iter=25, stop_criterion="data_size", v_init="prev_opt")
    exact = select(pool, target, max_iter=25, stop_criterion="data_size", optimizer="exact")
    assert np.all(exact.kl_curve <= grad.kl_curve + 1e-4)
    scores = [relaxed_kl(target, np.concatenate([np.zeros((0, 8), np.float32), pool[[i]]]), k=5) for i in range(len(pool))]
    assert exact.selected_indices[0] == int(np.argmin(scores))


def test_float64_agrees_with_float32():
    pool, target, _ = mixture()
    a = select(pool, target, max_iter=10, stop_criterion="data_size", optimizer="exact")
    b = select(pool, target, max_iter=10, stop_criterion="data_size", optimizer="exact", dtype="float64")
    np.testing.assert_array_equal(a.selected_indices, b.selected_indices)
    np.testing.assert_allclose(a.kl_curve, b.kl_curve, rtol=1e-5)


def test_selection_moves_towards_target_components():
    pool, target, labels = mixture(pool_n=200)
    r = select(pool, target, max_iter=40, stop_criterion="data_size", v_init="jump", seed=1)
    assert np.mean(labels[r.selected_indices] < 2) > 0.9
    assert knn_kl(target, pool[r.selected_indices]) < knn_kl(target, pool[:40])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(stop_criterion="bogus"), "stop_criterion"),
        (dict(v_init="middle"), "v_init"),
        (dict(k=0), "k=0: must be >= 1"),
        (dict(max_data_size=2.0), "max_data_size"),
        (dict(scale_factor="big"), "scale_factor"),
        (dict(lr=-1.0), "lr"),
    ],
)
def test_invalid_options_name_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GIOConfig.from_dict(kwargs)
    with pytest.raises(ValueError):  # pydantic's own error, with the field on its own line
        GIOConfig(**kwargs)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown GIO option.*max_iters"):
        GIOConfig.from_dict({"max_iters": 3})


def test_bad_inputs_are_named():
    pool, target, _ = mixture()
    with pytest.raises(ValueError, match="train has dimension 7 but target has 8"):
        select(pool[:, :7], target)
    bad = pool.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="train has 1 row.*NaN.*row 4"):
        select(bad, target)
    with pytest.raises(ValueError, match="target has 5 rows.*k=5"):
        select(pool, target[:5])
    with pytest.raises(ValueError, match="no row at all"):
        select(pool, target, random_init_pct=0.001)


def unit_mixture(seed=0):
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(200, 8)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    target = (pool[:40] + 0.05 * rng.normal(size=(40, 8))).astype(np.float32)
    return pool, target, rng.integers(1, 10, size=200)


@pytest.mark.parametrize("v_init", ["prev_opt", "mean"])
def test_a_budget_goes_on_past_gios_own_stop_in_gios_order(v_init):
    pool, target, weights = unit_mixture()
    own = select(pool, target, max_iter=200, v_init=v_init)
    assert own.stop_reason == "increase"
    big = select(pool, target, max_iter=200, v_init=v_init, weights=weights, budget=500)
    n = len(own.selected_indices)
    np.testing.assert_array_equal(big.selected_indices[:n], own.selected_indices)
    assert big.stop_reason == "budget" and big.own_stop_points == n and big.own_stop_reason == "increase"
    total = weights[big.selected_indices]
    assert total.sum() == big.weight_selected >= 500 > total[:-1].sum()  # stops at the first point that reaches it
    assert len(set(big.selected_indices)) == len(big.selected_indices)
    np.testing.assert_allclose(big.kl_curve[:n], own.kl_curve, rtol=1e-6)


def test_a_budget_below_gios_stop_and_past_max_iter():
    pool, target, weights = unit_mixture()
    small = select(pool, target, max_iter=200, v_init="prev_opt", weights=weights, budget=20)
    assert small.stop_reason == "budget" and small.own_stop_points is None
    assert weights[small.selected_indices].sum() >= 20 > weights[small.selected_indices[:-1]].sum()
    capped = select(pool, target, max_iter=5, v_init="prev_opt", budget=30)  # weight 1 a row: 30 rows
    assert len(capped.selected_indices) == 30 and capped.own_stop_points == 5 and capped.own_stop_reason == "max_iter"
    everything = select(pool, target, max_iter=5, v_init="prev_opt", budget=1e9)
    assert everything.stop_reason == "pool_exhausted" and len(everything.selected_indices) == len(pool)
    with pytest.raises(ValueError, match="weights must be 200 finite values"):
        select(pool, target, weights=np.ones(3), budget=10)
