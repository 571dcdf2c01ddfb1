"""What can go wrong with an answer, as the user is told: one shape for the JSON endpoint (with an
HTTP status) and for the stream (an `error` event)."""

from __future__ import annotations


class AnswerError(Exception):
    status_code = 500
    code = "internal_error"
    retryable = False  # whether asking again later may succeed

    def to_json(self) -> dict[str, str | bool]:
        return {"code": self.code, "message": str(self), "retryable": self.retryable}


class BadQuestion(AnswerError):
    status_code, code, retryable = 400, "bad_request", False


class UpstreamRejected(AnswerError):
    """The provider refused the request itself (400, 401, 403, 404, 422): trying again, or
    asking another model, would be refused the same way."""

    status_code, code, retryable = 502, "upstream_rejected", False


class UpstreamUnavailable(AnswerError):
    """Every model kept failing for reasons that pass (overload, rate limits, outages)."""

    status_code, code, retryable = 503, "upstream_unavailable", True


class DeadlineExceeded(AnswerError):
    status_code, code, retryable = 504, "deadline_exceeded", True


class AnswerInterrupted(AnswerError):
    """The upstream failed after part of the answer reached the user: it is not started again
    (the user would read the beginning twice), the stream ends with this error instead."""

    status_code, code, retryable = 502, "answer_interrupted", True


class InvalidModelOutput(AnswerError):
    """The model answered, but not in the shape asked for, even when told what was wrong.
    Models are not deterministic: asking again later may well work."""

    status_code, code, retryable = 502, "invalid_model_output", True
