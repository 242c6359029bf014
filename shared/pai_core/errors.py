"""One error hierarchy for every PAI server.

::

    PaiError                      anything PAI anticipated; its message reaches the model
    ├── InvalidInput              bad arguments: names the field and what to send instead
    ├── NotFound                  an id, name or path that does not exist
    ├── Conflict                  the state changed under us, or a write contradicts the store
    ├── PolicyDenied              a plan breaks a configured rule (the rule is named)
    ├── ConfigError               settings are missing or inconsistent
    ├── BackendUnavailable        a server we talk to cannot be reached or refused us
    ├── MissingDependency         an optional extra is not installed (names the extra)
    └── VerificationFailed        a change was made but could not be observed from outside

Each error carries context as keyword arguments (``field=``, ``hint=``, …) and renders one
message that says what happened and what to do next. The runtime maps every ``PaiError`` onto
the SDK's ``ToolError`` so the model reads that message instead of "Error executing tool X".
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendUnavailable",
    "ConfigError",
    "Conflict",
    "InvalidInput",
    "MissingDependency",
    "NotFound",
    "PaiError",
    "PolicyDenied",
    "VerificationFailed",
]


class PaiError(Exception):
    """Base of every anticipated PAI failure.

    ``hint`` is the next step for the caller; any other keyword argument is context that is
    kept on ``details`` and shown after the message.
    """

    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details = details

    def __str__(self) -> str:
        text = self.message
        if self.details:
            ctx = ", ".join(f"{k}={v!r}" for k, v in self.details.items())
            text = f"{text} ({ctx})"
        if self.hint:
            text = f"{text}. {self.hint}" if not text.endswith(".") else f"{text} {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary, for logs and audit entries."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            **{k: str(v) for k, v in self.details.items()},
        }


class InvalidInput(PaiError):
    """An argument is malformed. Pass ``field=`` to name it."""

    default_hint = "Fix the named field and call again; nothing was changed."


class NotFound(PaiError):
    """The named object does not exist."""

    default_hint = "Check the id or name (list or search first); nothing was changed."


class Conflict(PaiError):
    """The write contradicts current state, or the state changed since it was read."""

    default_hint = "Re-read the current state, then decide and call again."


class PolicyDenied(PaiError):
    """A configured policy refuses the change. Pass ``rule=`` to name it."""

    default_hint = "Change the plan so it satisfies the rule; nothing was changed."


class ConfigError(PaiError):
    """Settings are missing or inconsistent."""

    default_hint = "Set it in the environment or the config file, then restart the server."


class BackendUnavailable(PaiError):
    """A backend server could not be reached, or refused the request."""

    default_hint = "Check that the backend is running and reachable (`pai doctor`), then retry."


class MissingDependency(PaiError):
    """An optional dependency is not installed. Pass ``extra=`` to name the extra."""

    def __init__(self, message: str, *, extra: str, package: str, **details: Any) -> None:
        super().__init__(
            message,
            hint=f"Install it with `pip install '{package}[{extra}]'`.",
            extra=extra,
            **details,
        )


class VerificationFailed(PaiError):
    """The change was applied but its effect could not be observed from outside."""

    default_hint = "See the per-check evidence; the change was rolled back where possible."
