"""Device protocol drivers: one module per wire protocol. Each takes an open transport and
speaks the protocol; no policy, no database. Imports nothing from the rest of the project."""
