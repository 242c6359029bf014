"""Pieces of the mail server that need no running mail system: hashes, addresses, the locked
line file (merging concurrent writers), and bad input refused with nothing changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pai_core.errors import Conflict, InvalidInput, NotFound, PolicyDenied
from pai_core.settings import load_settings
from pai_mail.accounts import format_line, parse_line
from pai_mail.addresses import parse_address
from pai_mail.compose import build_service
from pai_mail.hashing import generate_password, sha512_crypt
from pai_mail.linefile import LineFile
from pai_mail.settings import MailSettings


def test_sha512_crypt_matches_the_reference_vector_and_dovecot() -> None:
    # The first test vector of the SHA-crypt specification.
    assert sha512_crypt("Hello world!", "saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEd"
        "FCoEOfaS35inz1"
    )
    doveadm = shutil.which("doveadm")
    if doveadm is None:
        pytest.skip("doveadm not installed: apt-get install dovecot-imapd")
    for password in ("p", "x" * 64, "y" * 65, "päss wörd-ß", generate_password()):
        hashed = "{SHA512-CRYPT}" + sha512_crypt(password)
        ok = subprocess.run(
            [doveadm, "pw", "-t", hashed, "-p", password], capture_output=True, text=True
        )
        assert "(verified)" in ok.stdout, ok.stderr


def test_generated_passwords_are_strong_and_distinct() -> None:
    pws = {generate_password() for _ in range(50)}
    assert len(pws) == 50
    assert all(len(p) == 24 and p.isalnum() for p in pws)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("<bob.smith+tag@example.com>", "bob.smith+tag@example.com"),
        ("o'neil@bücher.example", "o'neil@xn--bcher-kva.example"),
        ("x@münchen.de.", "x@xn--mnchen-3ya.de"),
    ],
)
def test_addresses_are_normalised(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("no-at-sign", "local@domain"),
        ("a@b@example.com", "invalid local part"),
        (".dot@example.com", "invalid local part"),
        ("two..dots@example.com", "invalid local part"),
        ('"quoted"@example.com', "quoted local part"),
        ("jörg@example.com", "non-ASCII local part"),
        ("a/b@example.com", "not allowed in a local part"),
        ("a b@example.com", "contains spaces"),
        ("x" * 65 + "@example.com", "longer than 64"),
        ("a@-bad-.example", "not a valid"),
        ("a@localhost", "fully qualified"),
        ("a@exa_mple.com", "not a valid"),
        ("a@192.0.2.1", "IP address"),
        ("a:b@example.com", "invalid local part"),
    ],
)
def test_bad_addresses_name_the_rule(text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_address(text)
    assert why in str(err.value) and "address" in str(err.value)


def test_account_lines_round_trip_and_keep_unknown_fields() -> None:
    line = "a@example.test:{SHA512-CRYPT}$6$s$h:65534:65534:A B:/m/a::userdb_x=1 allow_nets=local"
    acct = parse_line(line)
    assert acct is not None and acct.display_name == "A B" and acct.quota_mb is None
    assert format_line(acct) == line
    locked = acct.with_disabled(True)
    assert locked.password.startswith("{SHA512-CRYPT}!$6$") and "nologin=y" in format_line(locked)
    assert parse_line(format_line(locked)) == locked
    assert locked.with_disabled(False).password == acct.password
    assert parse_line("# comment") is None and parse_line("") is None


APPEND = """
import sys
from pathlib import Path
from pai_mail.linefile import LineFile
lf = LineFile(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    lf.update(lambda lines, i=i: [*lines, f"{sys.argv[2]}-{i}@example.test:x::::::"])
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("# kept\nhand@example.test:{PLAIN}x::::::\n")
    path.chmod(0o640)
    procs = [subprocess.Popen([sys.executable, "-c", APPEND, str(path), tag, "40"]) for tag in "ab"]
    assert [p.wait(60) for p in procs] == [0, 0]
    lines = path.read_text().splitlines()
    assert lines[:2] == ["# kept", "hand@example.test:{PLAIN}x::::::"]
    assert sorted(lines[2:]) == sorted(
        f"{t}-{i}@example.test:x::::::" for t in "ab" for i in range(40)
    )
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_change_made_by_hand_during_a_write_is_merged_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("first@example.test:x::::::\n")
    lf = LineFile(path)
    calls = []

    def change(lines: list[str]) -> list[str]:
        calls.append(list(lines))
        if len(calls) == 1:  # someone edits the file (without the lock) while we work
            with path.open("a") as fh:
                fh.write("byhand@example.test:y::::::\n")
        return [*lines, "ours@example.test:z::::::"]

    assert lf.update(change)
    assert len(calls) == 2 and lf.retries == 1
    assert path.read_text().splitlines() == [
        "first@example.test:x::::::",
        "byhand@example.test:y::::::",
        "ours@example.test:z::::::",
    ]


def _replace_all_with(line: str) -> Callable[[list[str]], list[str]]:
    return lambda _lines: [line]


def test_writes_in_one_second_still_change_the_whole_second_mtime(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("a:x::::::\n")
    lf = LineFile(path)
    stamps = []
    for i in range(3):  # same size each time, like a password hash replaced by another
        lf.update(_replace_all_with(f"a:{i}::::::"))
        st = path.stat()
        stamps.append((st.st_mtime_ns // 1_000_000_000, st.st_size))
    assert len(set(stamps)) == 3  # Dovecot compares whole seconds and size: each write is seen


@pytest.fixture
def offline_service(tmp_path: Path) -> object:
    """A service over temp files (nothing listens: only input checks can run)."""
    passwd = tmp_path / "passwd"
    passwd.write_text("# hand comment\ntaken@example.test:{PLAIN}secret1::::::\n")
    mailboxes = tmp_path / "virtual_mailbox"
    mailboxes.write_text("")
    settings = load_settings(
        MailSettings,
        tmp_path / "none.toml",
        domains=["example.test", "bücher.example"],
        passwd_file=passwd,
        postfix_virtual_mailbox_file=mailboxes,
        data_dir=tmp_path / "data",
        audit_log=tmp_path / "audit.jsonl",
        max_quota_mb=10240,
        doveadm="",
    )
    return build_service(settings)


def _contents(directory: Path) -> dict[str, bytes]:
    """Every file's bytes (lock files excepted: taking a lock changes nothing)."""
    return {
        p.name: p.read_bytes()
        for p in directory.iterdir()
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda s: s.create_account("bad address@example.test"), InvalidInput, "address"),
        (lambda s: s.create_account("a@other.example"), PolicyDenied, "managed-domains"),
        (lambda s: s.create_account("Taken@Example.test"), Conflict, "already exists"),
        (lambda s: s.create_account("n@example.test", quota="20G"), InvalidInput, "quota"),
        (lambda s: s.create_account("n@example.test", quota="0"), InvalidInput, "quota"),
        (lambda s: s.create_account("n@example.test", quota="lots"), InvalidInput, "quota"),
        (lambda s: s.create_account("n@example.test", display_name="a:b"), InvalidInput, "display"),
        (lambda s: s.create_account("n@example.test", password_file="/nonexistent"), InvalidInput, "password"),
        (lambda s: s.set_quota("ghost@example.test", "1G"), NotFound, "no account"),
        (lambda s: s.delete_account("ghost@example.test"), NotFound, "no account"),
        (lambda s: s.add_alias("x@example.test", "ghost@example.test"), NotFound, "no account"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_nothing_changed(
    offline_service: object, tmp_path: Path, call: object, error: type[Exception], text: str
) -> None:
    before = _contents(tmp_path)
    with pytest.raises(error) as err:
        call(offline_service)  # type: ignore[operator]
    assert text in str(err.value)
    after = _contents(tmp_path)
    assert after == before
    assert not (tmp_path / "audit.jsonl").exists()


def test_an_idna_domain_is_managed_in_its_ascii_form(offline_service: object) -> None:
    assert "xn--bcher-kva.example" in offline_service.domains  # type: ignore[attr-defined]
    addr = offline_service.address("Info@BÜCHER.example")  # type: ignore[attr-defined]
    assert str(addr) == "info@xn--bcher-kva.example"


def test_a_short_password_file_is_refused_without_showing_it(
    offline_service: object, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("short\n")
    with pytest.raises(InvalidInput) as err:
        offline_service.read_password(str(secret))  # type: ignore[attr-defined]
    assert "short" not in str(err.value).replace(str(secret), "")
    os.chmod(secret, 0o600)
