"""Early termination policies on hand-made metric curves: each decision is checked by hand."""

from __future__ import annotations

import pytest

from runyard.sweep.policies import (
    AshaPolicy,
    BanditPolicy,
    Decision,
    Goal,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
)

# -- bandit ------------------------------------------------------------------------------------


def test_bandit_slack_factor_stops_at_first_due_step_with_exact_reason() -> None:
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=5)
    history = {"a": [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9], "b": [0.5] * 7}
    # Before the delay nothing is judged, whatever the gap.
    assert policy.decide("b", {"a": history["a"], "b": [0.5] * 4}, "maximize") is None
    d = policy.decide("b", {"a": history["a"], "b": [0.5] * 5}, "maximize")
    assert d == Decision(trial_id="b", step=5, policy="bandit")
    assert d is not None and d.reason == "early termination: bandit at step 5"
    # The leader itself never stops.
    assert policy.decide("a", history, "maximize") is None


def test_bandit_threshold_follows_azure_example() -> None:
    # Azure's example: best 0.8, slack_factor 0.2: a trial whose best y has y * 1.2 < 0.8 stops.
    policy = BanditPolicy(slack_factor=0.2)
    assert policy.decide("y", {"x": [0.8], "y": [0.66]}, "maximize") is not None  # 0.792
    assert policy.decide("y", {"x": [0.8], "y": [0.67]}, "maximize") is None  # 0.804


def test_bandit_slack_amount() -> None:
    policy = BanditPolicy(slack_amount=0.2)
    assert policy.decide("y", {"x": [0.8], "y": [0.59]}, "maximize") is not None
    assert policy.decide("y", {"x": [0.8], "y": [0.61]}, "maximize") is None
    assert policy.decide("y", {"x": [1.0], "y": [1.21]}, "minimize") is not None
    assert policy.decide("y", {"x": [1.0], "y": [1.19]}, "minimize") is None


def test_bandit_minimize_slack_factor() -> None:
    policy = BanditPolicy(slack_factor=0.1)
    assert policy.decide("y", {"x": [0.2], "y": [0.23]}, "minimize") is not None  # > 0.22
    assert policy.decide("y", {"x": [0.2], "y": [0.21]}, "minimize") is None


def test_bandit_uses_the_trials_best_value_so_far() -> None:
    policy = BanditPolicy(slack_factor=0.1)
    # Its latest value dropped, but its best (0.85) is within slack of 0.9.
    assert policy.decide("y", {"x": [0.9, 0.9], "y": [0.85, 0.1]}, "maximize") is None


def test_bandit_compares_with_other_trials_only_up_to_the_same_step() -> None:
    policy = BanditPolicy(slack_factor=0.1)
    history = {"old": [0.1, 0.1, 0.99], "young": [0.5, 0.5]}
    # At step 2 the old trial had only 0.1: the young one leads.
    assert policy.decide("young", history, "maximize") is None
    history["young"].append(0.5)
    assert policy.decide("young", history, "maximize") == Decision("young", 3, "bandit")


def test_bandit_negative_metric_keeps_slack_meaning() -> None:
    policy = BanditPolicy(slack_factor=0.1)
    # Best -1.0: 10% worse is -1.1 for minimize... here maximize: allowed down to -1 - 1/11.
    assert policy.decide("y", {"x": [-1.0], "y": [-1.05]}, "maximize") is None
    assert policy.decide("y", {"x": [-1.0], "y": [-1.2]}, "maximize") is not None


def test_evaluation_interval_with_delay_acts_on_multiples_at_or_after_delay() -> None:
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=2, delay_evaluation=5)
    leader = [1.0] * 10
    for n, expected in [(4, None), (5, None), (6, 6), (7, None), (8, 8)]:
        d = policy.decide("b", {"a": leader, "b": [0.1] * n}, "maximize")
        assert (d.step if d else None) == expected, n


def test_since_judges_every_step_of_a_batch() -> None:
    policy = BanditPolicy(slack_factor=0.1, delay_evaluation=3)
    history = {"a": [1.0] * 6, "b": [0.1] * 6}
    # Values 1..6 arrived at once after the controller had judged 2 steps: step 3 loses.
    assert policy.decide("b", history, "maximize", since=2) == Decision("b", 3, "bandit")
    # By default only the latest step is judged.
    assert policy.decide("b", history, "maximize") == Decision("b", 6, "bandit")
    assert policy.decide("b", history, "maximize", since=6) is None


@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_nan_counts_as_worst(goal: Goal) -> None:
    nan = float("nan")
    bandit = BanditPolicy(slack_factor=0.5)
    history = {"a": [1.0], "b": [nan]}
    assert bandit.decide("b", history, goal) == Decision("b", 1, "bandit")
    assert bandit.decide("a", history, goal) is None
    assert AshaPolicy(reduction_factor=2).decide("b", history, goal) is not None


def test_trial_without_values_is_never_stopped() -> None:
    policy = BanditPolicy(slack_factor=0.1)
    assert policy.decide("b", {"a": [1.0], "b": []}, "maximize") is None
    assert policy.decide("missing", {"a": [1.0]}, "maximize") is None


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "exactly one of slack_factor and slack_amount"),
        ({"slack_factor": 0.1, "slack_amount": 0.1}, "exactly one"),
        ({"slack_factor": -0.1}, "slack_factor must be a number >= 0"),
        ({"slack_factor": 0.1, "evaluation_interval": 0}, "evaluation_interval must be at least 1"),
        ({"slack_factor": 0.1, "delay_evaluation": -1}, "delay_evaluation must not be negative"),
    ],
)
def test_bandit_validation(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BanditPolicy(**kwargs)  # type: ignore[arg-type]


# -- median stopping ---------------------------------------------------------------------------


def test_median_stopping_compares_best_with_median_of_running_averages() -> None:
    policy = MedianStoppingPolicy(delay_evaluation=3)
    history = {"a": [0.875] * 3, "b": [0.75] * 3, "c": [0.125, 0.25, 0.375]}
    # Averages .875, .75, .25 -> median .75; c's best .375 is worse.
    assert policy.decide("c", history, "maximize") == Decision("c", 3, "median stopping")
    assert policy.decide("b", history, "maximize") is None  # equal to the median: not worse
    assert policy.decide("a", history, "maximize") is None
    # Before the delay: nothing.
    short = {k: v[:2] for k, v in history.items()}
    assert policy.decide("c", short, "maximize") is None


def test_median_stopping_minimize_and_running_average_up_to_step() -> None:
    policy = MedianStoppingPolicy()
    # Losses. At step 2: averages a=1.0, b=2.0, c=(5+4)/2=4.5 -> median 2.0; c's best 4 > 2.
    history = {"a": [1.0, 1.0, 0.0, 0.0], "b": [2.0, 2.0], "c": [5.0, 4.0]}
    assert policy.decide("c", history, "minimize") == Decision("c", 2, "median stopping")
    # A trial that improved below the median continues.
    history["c"] = [5.0, 1.5]
    assert policy.decide("c", history, "minimize") is None


def test_median_stopping_alone_never_stops() -> None:
    assert MedianStoppingPolicy().decide("a", {"a": [0.1, 0.0]}, "maximize") is None


# -- truncation selection ----------------------------------------------------------------------


def test_truncation_cuts_worst_percentage_of_trials_that_reached_the_step() -> None:
    policy = TruncationSelectionPolicy(truncation_percentage=25)
    history = {"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.7, 0.7], "d": [0.1, 0.2]}
    assert policy.decide("d", history, "maximize") == Decision("d", 2, "truncation selection")
    assert policy.decide("c", history, "maximize") is None
    # Only three trials reached step 2: 25% of 3 rounds down to none cut.
    history["a"] = [0.9]
    assert policy.decide("d", history, "maximize") is None


def test_truncation_minimize_and_ties_favour_the_trial() -> None:
    policy = TruncationSelectionPolicy(truncation_percentage=50)
    history = {"a": [1.0], "b": [2.0], "c": [3.0], "d": [3.0]}
    # Four ranked, two cut: c and d tie for worst; each has two strictly better -> cut.
    assert policy.decide("d", history, "minimize") is not None
    history = {"a": [1.0], "b": [3.0], "c": [3.0], "d": [3.0]}
    # Only one trial is strictly better than d: ties keep it.
    assert policy.decide("d", history, "minimize") is None


def test_truncation_exclude_finished_jobs() -> None:
    history = {"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.7, 0.7], "f": [0.1, 0.1]}
    keep = TruncationSelectionPolicy(truncation_percentage=34)
    # With the finished trial f ranked, f is the worst one of four: c survives.
    assert keep.decide("c", history, "maximize", finished={"f"}) is None
    drop = TruncationSelectionPolicy(truncation_percentage=34, exclude_finished_jobs=True)
    # Without it, c is the worst of three running trials and 34% of 3 cuts one.
    assert drop.decide("c", history, "maximize", finished={"f"}) == Decision(
        "c", 2, "truncation selection"
    )


def test_truncation_percentage_is_validated() -> None:
    with pytest.raises(ValueError, match="between 1 and 99"):
        TruncationSelectionPolicy(truncation_percentage=0)
    with pytest.raises(ValueError, match="between 1 and 99"):
        TruncationSelectionPolicy(truncation_percentage=100)


# -- ASHA --------------------------------------------------------------------------------------


def test_asha_rungs() -> None:
    assert AshaPolicy(grace_period=1, reduction_factor=2, max_steps=8).rungs == (1, 2, 4)
    assert AshaPolicy(grace_period=2, reduction_factor=3, max_steps=100).rungs == (2, 6, 18, 54)
    assert AshaPolicy(grace_period=1, reduction_factor=1.5, max_steps=5).rungs == (1, 2, 3, 4)
    assert AshaPolicy(grace_period=5, reduction_factor=2, max_steps=5).rungs == ()


def test_asha_stops_below_top_fraction_at_rungs_only() -> None:
    policy = AshaPolicy(grace_period=1, reduction_factor=2, max_steps=8)
    # The first trial at a rung always continues.
    assert policy.decide("a", {"a": [0.5]}, "maximize") is None
    # b is below the median of the others at rung 1.
    assert policy.decide("b", {"a": [0.5, 0.6], "b": [0.4]}, "maximize") == Decision("b", 1, "asha")
    # Step 3 is no rung: nothing is judged there, however bad.
    history = {"a": [0.5, 0.6, 0.9, 0.9], "b": [0.6, 0.7, 0.0]}
    assert policy.decide("b", history, "maximize") is None
    # At rung 4 ASHA looks at the value logged at that step (not the best so far).
    history["b"].append(0.1)
    assert policy.decide("b", history, "maximize") == Decision("b", 4, "asha")


def test_asha_quantile_cutoff_and_minimize() -> None:
    policy = AshaPolicy(grace_period=1, reduction_factor=4, max_steps=100)
    others = {"a": [0.1], "b": [0.2], "c": [0.3]}
    # Keep the top quarter: cutoff is the 75th percentile of (0.1, 0.2, 0.3) = 0.25.
    assert policy.decide("x", {**others, "x": [0.24]}, "maximize") is not None
    assert policy.decide("x", {**others, "x": [0.26]}, "maximize") is None
    # Minimize: cutoff is the 25th percentile = 0.15.
    assert policy.decide("x", {**others, "x": [0.16]}, "minimize") is not None
    assert policy.decide("x", {**others, "x": [0.14]}, "minimize") is None


def test_asha_validation() -> None:
    with pytest.raises(ValueError, match="reduction_factor must be greater than 1"):
        AshaPolicy(reduction_factor=1)
    with pytest.raises(ValueError, match="grace_period must be at least 1"):
        AshaPolicy(grace_period=0)
    with pytest.raises(ValueError, match="max_steps must be at least grace_period"):
        AshaPolicy(grace_period=10, max_steps=5)


def test_policies_round_trip_through_their_yaml_form() -> None:
    from runyard.sweep import policy_from_dict

    for p in [
        BanditPolicy(slack_factor=0.1, evaluation_interval=2, delay_evaluation=5),
        MedianStoppingPolicy(delay_evaluation=3),
        TruncationSelectionPolicy(truncation_percentage=20, exclude_finished_jobs=True),
        AshaPolicy(grace_period=2, reduction_factor=3, max_steps=30),
    ]:
        assert policy_from_dict(p.to_dict()) == p
