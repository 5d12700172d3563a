"""The patron touchscreen: a web page served by the daemon (see :mod:`kiosk.web.server`)."""
