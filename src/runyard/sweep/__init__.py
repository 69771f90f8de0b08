"""Hyperparameter sweeps: search spaces, samplers, early termination policies and the sweep
spec (pure and deterministic), the controller that runs a sweep's trials with all its state in
the store (:mod:`.controller`), and the Python API to start, resume, cancel and read sweeps
(:mod:`.api`).
"""

from runyard.sweep.api import (
    best_trial,
    cancel_sweep,
    create_sweep,
    get_sweep,
    resume_sweep,
    run_sweep,
    sweep_trials,
)
from runyard.sweep.controller import SweepController, SweepState, controller_alive
from runyard.sweep.load import load_sweep, policy_from_dict, sweep_from_dict
from runyard.sweep.policies import (
    POLICIES,
    AshaPolicy,
    BanditPolicy,
    Decision,
    EarlyTerminationPolicy,
    Goal,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
)
from runyard.sweep.results import Trial
from runyard.sweep.samplers import (
    SAMPLERS,
    GridSampler,
    Params,
    RandomSampler,
    Sampler,
    SobolSampler,
    TrialResult,
    make_sampler,
)
from runyard.sweep.space import (
    DISTRIBUTIONS,
    Choice,
    Distribution,
    LogNormal,
    LogUniform,
    Normal,
    ParamValue,
    QLogNormal,
    QLogUniform,
    QNormal,
    QUniform,
    RandInt,
    Uniform,
    format_value,
    parse_search_space,
)
from runyard.sweep.spec import Objective, SamplingAlgorithm, SweepLimits, SweepSpec
from runyard.sweep.trial import trial_job, trial_params

__all__ = [
    "DISTRIBUTIONS",
    "POLICIES",
    "SAMPLERS",
    "AshaPolicy",
    "BanditPolicy",
    "Choice",
    "Decision",
    "Distribution",
    "EarlyTerminationPolicy",
    "Goal",
    "GridSampler",
    "LogNormal",
    "LogUniform",
    "MedianStoppingPolicy",
    "Normal",
    "Objective",
    "ParamValue",
    "Params",
    "QLogNormal",
    "QLogUniform",
    "QNormal",
    "QUniform",
    "RandInt",
    "RandomSampler",
    "Sampler",
    "SamplingAlgorithm",
    "SobolSampler",
    "SweepController",
    "SweepLimits",
    "SweepSpec",
    "SweepState",
    "Trial",
    "TrialResult",
    "TruncationSelectionPolicy",
    "Uniform",
    "best_trial",
    "cancel_sweep",
    "controller_alive",
    "create_sweep",
    "format_value",
    "get_sweep",
    "load_sweep",
    "make_sampler",
    "parse_search_space",
    "policy_from_dict",
    "resume_sweep",
    "run_sweep",
    "sweep_from_dict",
    "sweep_trials",
    "trial_job",
    "trial_params",
]
