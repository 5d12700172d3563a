"""pyserial protocol handlers of our own (``serial.protocol_handler_packages``).

:mod:`hardware.printer` adds this package to pyserial's search list, after which
``serial.serial_for_url("usblp:///dev/usb/lp0")`` opens a USB printer like any other port.
"""
