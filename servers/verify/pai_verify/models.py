"""Structured results of the verify tools."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pai_core.memory.record import MemoryNote

__all__ = [
    "CheckRow",
    "Expectation",
    "HttpCheckResult",
    "ImageCount",
    "ManyResult",
    "ScreenshotResult",
    "TlsInfo",
    "Verdict",
    "VisualDiffResult",
    "WaitResult",
]


class Expectation(BaseModel):
    """One expectation and whether it held."""

    name: str
    expected: str
    actual: str
    ok: bool


class TlsInfo(BaseModel):
    subject: str
    issuer: str
    not_after: str
    days_to_expiry: int
    verified: bool = Field(description="Whether the chain verified against the system CAs.")
    error: str | None = None


class HttpCheckResult(BaseModel):
    url: str
    ok: bool = Field(description="Reached, and every expectation held.")
    status: int | None
    final_url: str | None
    redirects: list[dict[str, str | int]] = Field(description="Each hop: url, status.")
    ttfb_ms: float | None = Field(description="Time to response headers.")
    total_ms: float | None = Field(description="Time to the whole body.")
    size_bytes: int | None
    content_type: str | None
    tls: TlsInfo | None
    checks: list[Expectation]
    error: str | None = None


class CheckRow(BaseModel):
    url: str
    ok: bool
    status: int | None
    total_ms: float | None
    failed: list[str]
    error: str | None = None


class ManyResult(BaseModel):
    total: int
    passed: int
    failed: int
    wall_ms: float
    rows: list[CheckRow]


class WaitResult(BaseModel):
    live: bool
    attempts: int
    waited_s: float
    last: HttpCheckResult


class ScreenshotResult(BaseModel):
    url: str
    path: str
    bytes: int
    width: int
    height: int
    title: str
    inline: bool = Field(description="Whether the image is attached for the model to see.")


class ImageCount(BaseModel):
    url: str
    total: int
    loaded: int = Field(description="Images whose bytes decoded completely.")
    broken: list[dict[str, str | int | None]] = Field(
        description="Images not loaded: src, status, reason ('HTTP 404', a network error, "
        "'does not decode: …', or 'not loaded (lazy, never in view)' for a lazy image the "
        "browser never requested)."
    )
    background_images: int | None = None
    background_broken: list[dict[str, str | int | None]] = Field(default_factory=list)


class VisualDiffResult(BaseModel):
    ok: bool
    ratio: float = Field(description="Share of pixels that differ (0..1).")
    threshold: float
    screenshot_path: str
    baseline_path: str
    diff_path: str | None
    size_mismatch: bool = False


class Verdict(BaseModel):
    url: str
    passed: bool
    failing: list[Expectation] = Field(description="Failed checks first: what to fix.")
    passing: list[Expectation]
    screenshot_path: str | None = None
    diff_path: str | None = None
    console_errors: list[str] = Field(default_factory=list)
    memory: MemoryNote | None = Field(
        None, description="Whether the verdict was recorded in the shared memory."
    )
