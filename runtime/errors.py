"""Errors a skill raises.  Each names the problem in words a user can act on; none leaks a bare
traceback from deep inside torch without saying which skill, input or file it was about."""


class SkillError(Exception):
    """Base class for every error skillmill raises on purpose."""


class SkillLoadError(SkillError, ValueError):
    """The model could not be loaded: missing directory, bad config, weights that do not fit."""


class SkillInputError(SkillError, ValueError):
    """The inputs given to ``process`` are of the wrong kind, name, dtype or shape."""


class UnknownDeviceError(SkillError, ValueError):
    """``device=`` names no hardware target this skill knows."""


class BackendUnavailable(SkillError, RuntimeError):
    """A hardware target cannot run this model here; ``reason`` says why (the skill falls back)."""

    def __init__(self, target: str, reason: str):
        super().__init__(f"{target}: unavailable: {reason}")
        self.target = target
        self.reason = reason


class ConstraintsUnsatisfiable(SkillError, ValueError):
    """``device="auto"``'s constraints contradict each other or what was measured: a memory cap no
    engine meets, an error bound none satisfies, a precision the skill does not compute at."""


class DecisionTableError(SkillError, ValueError):
    """The decision table cannot answer: corrupt, or written by another format version."""
