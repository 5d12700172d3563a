"""The hardware layer: device roles, building devices from config, simulators that speak the
same wire protocols, self-tests. Imports :mod:`drivers` only."""
