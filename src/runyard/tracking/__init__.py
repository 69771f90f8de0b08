"""Tracking: the in-job API (:mod:`runyard.tracking.api`) and the events file it appends to
(:mod:`runyard.tracking.events`), which the run supervisor reads.

Kept import-light: a training script that imports runyard loads only the standard library.
"""
