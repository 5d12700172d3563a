"""Exit codes of the ``kiosk`` command, the same for every subcommand (see README)."""

OK = 0
REFUSED = 1  # a circulation request was refused, or a check found problems
USAGE = 2  # wrong command-line arguments (argparse's own code)
CONFIG = 3  # the config file is missing or invalid
DATA = 4  # the database is missing, corrupt, read-only, full, or from a newer release
INTERRUPTED = 130
