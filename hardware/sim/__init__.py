"""Simulated devices that speak the real wire protocols; part of the product (the demo and
the tests run the real drivers on them): a FEIG reader with ISO 28560 book tags on a
pseudo-terminal (feig, iso15693, books), an MFRC522 chip behind an SPI object with MIFARE
cards (mfrc522, iso14443a), an ESC/POS receipt printer that renders PNGs (escpos_printer),
and locker and entrance doors that follow their latches on gpiozero mock pins (doors)."""
