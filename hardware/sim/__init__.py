"""Simulated devices that speak the real wire protocols, so the kiosk, the demo and the tests
run the real drivers against them: a pseudo-terminal serial device (:mod:`.pty`), virtual
ISO 15693 tags (:mod:`.iso15693`) and a FEIG ISO host reader (:mod:`.feig`)."""
