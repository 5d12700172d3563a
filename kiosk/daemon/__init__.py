"""The kiosk daemon (``kiosk run``): one process that owns the devices, the cache and the
sync. Start with :mod:`kiosk.daemon.app`; docs/daemon.md describes it for people."""
