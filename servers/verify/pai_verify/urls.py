"""Which URLs may be checked: http(s) only, at most 2,048 characters, host allow/deny lists by
domain suffix."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pai_core.errors import InvalidInput, PolicyDenied

__all__ = ["MAX_URL_LENGTH", "UrlPolicy"]

# Longer URLs are not real pages (sitemaps and most CDNs stop at 2,048): each result echoes
# the URL, so an unbounded one would fill the model's context for nothing.
MAX_URL_LENGTH = 2048


def _matches(host: str, patterns: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == p or host.endswith("." + p) for p in patterns)


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def check(self, url: str, field: str = "url") -> str:
        """Return ``url`` if it may be fetched, else raise naming the rule."""
        if not isinstance(url, str) or not url.strip():
            raise InvalidInput("url is empty", field=field)
        if len(url) > MAX_URL_LENGTH:
            raise InvalidInput(
                f"the URL has {len(url)} characters; at most {MAX_URL_LENGTH} are accepted "
                f"(it starts {url[:60]!r})",
                field=field,
                hint="Check the page at a shorter URL (drop tracking parameters); "
                "nothing was fetched.",
            )
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise InvalidInput(
                f"only http and https URLs can be checked, not {parts.scheme or 'no'} scheme",
                field=field,
                hint="Give a full URL such as https://example.com/.",
            )
        host = (parts.hostname or "").lower()
        if not host:
            raise InvalidInput("the URL has no host", field=field)
        allow = tuple(h.lower().rstrip(".") for h in self.allow)
        deny = tuple(h.lower().rstrip(".") for h in self.deny)
        if deny and _matches(host, deny):
            raise PolicyDenied(f"host {host} is on the deny list", rule="deny-hosts")
        if allow and not _matches(host, allow):
            raise PolicyDenied(
                f"host {host} is not on the allow list",
                rule="allow-hosts",
                hint=f"Allowed: {', '.join(allow)}.",
            )
        return url.strip()
