"""The application on the device: the ``kiosk`` command, and later the daemon, sessions and
the local web UI. Imports :mod:`hardware` and :mod:`sync`."""

__version__ = "0.1.0"
