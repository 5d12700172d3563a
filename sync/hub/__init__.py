"""The reference county hub: a real HTTP server implementing ``docs/hub-api.yaml``.

Layout (one concept per module):

- :mod:`sync.hub.config`: the hub's settings (card-number prefix, limits, time zone).
- :mod:`sync.hub.errors`: the error classes, one per stable error ``code`` of the contract.
- :mod:`sync.hub.schema`: the hub's own tables, applied on top of the kiosk cache schema.
- :mod:`sync.hub.store`: :class:`~sync.hub.store.HubStore`, what the HTTP layer needs from
  storage, and :class:`~sync.hub.store.SqliteHubStore`, its SQLite implementation.
- :mod:`sync.hub.intake`: storing a pushed batch (each event once, the gap-free prefix).
- :mod:`sync.hub.timefix`: placing events on the hub's clock (clock anchors).
- :mod:`sync.hub.apply` (verdicts, exceptions, each kind of event) and
  :mod:`sync.hub.physical` (an item's loans in time order): applying events.
- :mod:`sync.hub.applier` (which events are due, and the background thread that applies
  them after the push) and :mod:`sync.hub.chunk` (what one applying transaction shares).
- :mod:`sync.hub.changes`, :mod:`sync.hub.rows`, :mod:`sync.hub.snapshot`: the change log
  and its cursors, the rows of each feed, and the streamed snapshot.
- :mod:`sync.hub.auth` (tokens) and :mod:`sync.hub.validate` (request bodies).
- :mod:`sync.hub.app` (Starlette), :mod:`sync.hub.server` (uvicorn, TLS, mTLS) and
  :mod:`sync.hub.testing` (:class:`~sync.hub.testing.HubServer` for tests and the demo).

Nothing here imports ``kiosk`` or ``hardware``: the hub is the library's data side.
"""
