"""The one error the environment mechanism adds to runyard's tree.

Mistakes in an environment's definition (a bad requirement, no interpreter that fits, conda
packages, an image without a container engine) are :class:`~runyard.errors.SpecError`
naming the ``environment.<field>``; only a build that the installer itself rejects is an
:class:`EnvironmentBuildError`.
"""

from __future__ import annotations

from runyard.errors import RunyardError


class EnvironmentBuildError(RunyardError):
    """Building an environment failed. The message ends with the installer's own words (the
    last lines uv printed); ``output`` holds them alone. Nothing is left in the cache."""

    def __init__(self, message: str, *, output: str = ""):
        #: runyard's own account (``installing the packages of environment ... failed``).
        self.message = message
        self.output = output
        super().__init__(f"{message}\n{output}" if output else message)
