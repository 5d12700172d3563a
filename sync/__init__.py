"""The library's data side: the offline cache, the circulation rules, the outbox, and (later)
the hub client and the reference hub. Knows nothing of hardware."""
