"""The verbs of ``kiosk sim``, shared by the command (its argument choices) and the daemon
(:mod:`kiosk.daemon.simctl`), in a module light enough for every ``kiosk`` start."""

from __future__ import annotations

# printer verb -> (simulator fault, switched on)
PRINTER_ACTIONS = {
    "paper-out": ("paper_out", True), "paper-in": ("paper_out", False),
    "cover-open": ("cover_open", True), "cover-closed": ("cover_open", False),
}
PRINTER_VERBS = (*PRINTER_ACTIONS, "unplug", "replug")
DOOR_ACTIONS = ("open", "close", "jam", "clear")
READER_ACTIONS = ("unplug", "replug", "fault")
# Faults of the simulated FEIG reader (hardware.sim.feig.FAULTS) a technician may inject.
READER_FAULTS = ("afi_write_fails", "afi_not_stick", "no_reply", "garble", "truncate",
                 "tag_leaves", "rf_noise", "late_reply", "unplug")
