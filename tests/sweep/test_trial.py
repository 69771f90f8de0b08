"""A trial's job: search-space values substituted or appended, timeout bounded."""

from __future__ import annotations

from runyard.spec import JobSpec, LimitsSpec
from runyard.sweep import Objective, SweepLimits, SweepSpec, parse_search_space, trial_job
from runyard.sweep.trial import trial_params

SPACE = parse_search_space(
    {
        "lr": {"type": "loguniform", "min_value": 1e-4, "max_value": 1e-1},
        "act": {"type": "choice", "values": ["relu", "a b", True]},
    }
)


def sweep(command: str | tuple[str, ...], **limits: float) -> SweepSpec:
    return SweepSpec(
        trial=JobSpec(command=command, limits=LimitsSpec(timeout=900)),
        search_space=SPACE,
        objective=Objective("val_acc"),
        limits=SweepLimits(max_total_trials=4, **limits),  # type: ignore[arg-type]
    )


def test_placeholders_are_filled_and_other_params_appended_quoted() -> None:
    job = trial_job(
        sweep("python t.py --lr ${{search_space.lr}} --out ${{outputs.m}}"),
        {"lr": 0.001, "act": "a b"},
    )
    assert job.command == "python t.py --lr 0.001 --out ${{outputs.m}} --act 'a b'"


def test_list_commands_get_separate_arguments() -> None:
    job = trial_job(
        sweep(("python", "t.py", "--act=${{search_space.act}}")), {"lr": 1e-05, "act": True}
    )
    assert job.command == ("python", "t.py", "--act=true", "--lr", "1e-05")


def test_trial_timeout_bounds_the_jobs_own() -> None:
    assert trial_job(sweep("x"), {}).limits.timeout == 900
    assert trial_job(sweep("x", trial_timeout=600), {}).limits.timeout == 600
    assert trial_job(sweep("x", trial_timeout=1200), {}).limits.timeout == 900


def test_trial_params_are_the_recorded_text() -> None:
    assert trial_params({"lr": 0.001, "act": True, "n": 3}) == {
        "lr": "0.001",
        "act": "true",
        "n": "3",
    }
