"""The errors a user can cause, one family. A script's main prints a UserError as one line
(`error: ...`, cli.fail) and exits non-zero; every other exception is a bug and keeps its
traceback. This module imports nothing of the project: everything may import it."""


class UserError(Exception):
    """An error the user can fix (a bad option, a missing or damaged folder): printed as one line."""


class SettingsError(UserError):
    """A setting, flag or budget that cannot apply (an unknown key, a value of the wrong type or
    out of range, a head count that does not divide the width)."""


class UnknownArch(SettingsError):
    def __init__(self, name, known):
        super().__init__(f"unknown architecture {name!r}; choose one of: {', '.join(known)}")


class DataError(UserError):
    """A problem with data the user can fix (bad option, bad file, impossible split)."""


class BadInput(UserError):
    """A typed problem that is not a problem of the task (wrong shape, division by zero)."""


class RunError(UserError):
    """A problem with a run folder the user can fix (missing, damaged, of another kind)."""


class StudyError(UserError):
    """A problem with a study or its storage the user can fix (a bad URL, an unknown study)."""


class OnnxError(UserError):
    """An export that is missing or unreadable, or a runtime this installation lacks."""
