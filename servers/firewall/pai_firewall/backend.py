"""Running ``nft``: read the owned table as JSON, check a batch (``nft -c``), apply it (``nft -f``).

With a network namespace configured every command runs as ``ip netns exec <ns> nft ...``, so the
server and its rollback guard act on that namespace only. The batch goes on stdin; ``nft -f``
is one kernel transaction, so a rejected batch changes nothing. This module uses only the
standard library: the detached rollback guard imports it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

__all__ = ["NftError", "NftRunner"]


class NftError(Exception):
    """nft refused a command; ``stderr`` says why, ``missing`` when nft itself is not there."""

    def __init__(self, message: str, stderr: str = "", *, missing: bool = False) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.missing = missing


@dataclass(frozen=True, slots=True)
class NftRunner:
    table: str = "inet pai"
    netns: str | None = None
    nft: str = "nft"
    ip: str = "ip"
    timeout_s: float = 30.0

    def _cmd(self, *args: str) -> list[str]:
        base = [self.nft, *args]
        return [self.ip, "netns", "exec", self.netns, *base] if self.netns else base

    def run(self, *args: str, stdin: str | None = None) -> str:
        cmd = self._cmd(*args)
        try:
            proc = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, timeout=self.timeout_s
            )
        except FileNotFoundError as exc:
            raise NftError(f"{cmd[0]} not found", missing=True) from exc
        except subprocess.TimeoutExpired as exc:
            raise NftError(f"{' '.join(cmd[:6])} did not finish in {self.timeout_s}s") from exc
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if self.netns and "Cannot open network namespace" in err:
                raise NftError(f"network namespace {self.netns} does not exist", err)
            raise NftError(f"nft {args[0] if args else ''} failed: {err[-2000:]}", err)
        return proc.stdout

    def list_table(self) -> str:
        """The owned table as nft JSON, or "" when the table does not exist."""
        try:
            return self.run("-j", "list", "table", *self.table.split())
        except NftError as exc:
            if "No such file or directory" in exc.stderr:
                return ""
            raise

    def check(self, batch: str) -> None:
        """``nft -c -f -``: the kernel validates the batch and keeps nothing."""
        self.run("-c", "-f", "-", stdin=batch)

    def apply(self, batch: str) -> None:
        """``nft -f -``: the whole batch as one transaction, or nothing."""
        self.run("-f", "-", stdin=batch)
