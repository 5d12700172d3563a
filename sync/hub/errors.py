"""Errors the hub answers with: one class per stable ``code`` of the contract's ``Error``.

Raising one of these anywhere below the HTTP layer yields exactly that status, code and
``retryable`` flag in the response; ``str(error)`` is the English ``message`` (for logs, so
it never holds a patron's name or ID number).
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Root of the errors a client sees. ``details`` goes to the response as it is."""

    status = 500
    code = "internal"
    retryable = True

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.details = details
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": str(self),
                                 "retryable": self.retryable}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(HubError):
    status, code, retryable = 400, "bad_request", False


class Unauthorized(HubError):
    status, code, retryable = 401, "unauthorized", False


class Forbidden(HubError):
    status, code, retryable = 403, "forbidden", False


class NotFound(HubError):
    status, code, retryable = 404, "not_found", False


class MethodNotAllowed(HubError):
    # The contract has no code of its own for this; a wrong method is a bad request.
    status, code, retryable = 405, "bad_request", False


class PayloadTooLarge(HubError):
    status, code, retryable = 413, "payload_too_large", False


class IdempotencyMismatch(HubError):
    status, code, retryable = 422, "idempotency_mismatch", False


class ValidationFailed(HubError):
    status, code, retryable = 422, "validation_failed", False


class CursorExpired(HubError):
    status, code, retryable = 410, "cursor_expired", False


class RangeExhausted(HubError):
    status, code, retryable = 409, "range_exhausted", False


class Unavailable(HubError):
    status, code, retryable = 503, "unavailable", True


class Internal(HubError):
    status, code, retryable = 500, "internal", True
