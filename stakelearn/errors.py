"""One exception base for the whole project.

Each subclass also inherits the built-in type it refines, so callers may catch either
(``except InputError`` or ``except ValueError``). The CLI prints ``str(error)`` as one line.
"""


class StakeLearnError(Exception):
    """Base of every error StakeLearn raises on purpose."""


class InputError(StakeLearnError, ValueError):
    """A user-supplied value or file is wrong; the message says how to fix it."""


class ArtifactError(StakeLearnError, FileNotFoundError):
    """A file the step needs is missing or unreadable."""


class ProofError(StakeLearnError, RuntimeError):
    """The prover failed, or a proof did not verify."""


class ToolchainError(StakeLearnError, RuntimeError):
    """An external tool (solc, anvil, ezkl's svm lookup) is missing or failed."""
