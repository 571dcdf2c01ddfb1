"""The shape of every error the app reports, whatever the task: the brief's
``{"code": "...", "message": "...", "retryable": true|false}``."""

from __future__ import annotations

import typing

ERROR_SHAPE = '{"code": "...", "message": "...", "retryable": true|false}'


def is_error(body: typing.Any) -> bool:
    """Whether `body` has the error shape: a string code, a message for people, a boolean
    retryable."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("code"), str)
        and isinstance(body.get("message"), str)
        and bool(body["message"].strip())
        and isinstance(body.get("retryable"), bool)
    )
