"""The two kinds of failure the CLI reports in one line: the user's (their input or their machine, with the
fix) and ours (a defect of elir-edge, never blamed on the input)."""


class UserError(Exception):
    """A problem with the user's input, stated as `problem: fix` in one line."""


class InternalError(Exception):
    """A check of elir-edge's own work failed (a graph it wrote breaks a rule, an export it made disagrees
    with PyTorch): a bug in elir-edge, reported with the details written to a file for the bug report."""
