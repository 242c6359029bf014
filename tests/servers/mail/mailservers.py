"""Real Dovecot and Postfix for the mail tests (and the mail benchmark), from temp configs.

:func:`start_stack` writes a Dovecot config (IMAP, LMTP and an auth listener for Postfix SASL,
passwd-file passdb/userdb, quota) and a Postfix config (submission with SASL through Dovecot,
virtual mailbox domains delivered to Dovecot over LMTP, hash maps rebuilt by ``postmap``) into
one temp dir, starts Dovecot, then Postfix once Dovecot's auth listener is up, each on free
loopback ports, and returns a :class:`MailStack` that stops both by PID.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port, stop_process, wait_for_port

__all__ = ["MailStack", "find_binary", "start_stack"]

DOMAIN = "example.test"
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"

DOVECOT_CONF = """\
instance_name = pai-mail-{tag}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
first_valid_uid = 1
mail_plugins = quota
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
  default_fields = uid={user} gid={group} home={d}/mail/%d/%n
}}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
protocol lmtp {{
  postmaster_address = postmaster@{domain}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service anvil {{
  # No auth penalty in the tests: a wrong password must not slow the next login by seconds.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {auth}
  }}
}}
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.{domain}
mydestination =
mynetworks = 127.0.0.0/8
maillog_file = {d}/log/postfix.log
maillog_file_prefixes = {d}/log
virtual_mailbox_domains = {domains}
virtual_mailbox_maps = hash:{mailboxes}
virtual_alias_maps = hash:{aliases}
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
default_transport = error:no outbound mail from the test stack
relay_transport = error:no outbound mail from the test stack
local_transport = error:no local delivery in the test stack
disable_dns_lookups = yes
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth}
smtpd_sasl_auth_enable = yes
smtpd_tls_security_level = none
smtpd_error_sleep_time = 0s
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = permit_sasl_authenticated, reject_unauth_destination
"""

MASTER_CF = """\
127.0.0.1:{submission} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def find_binary(name: str) -> str | None:
    """``name`` on PATH, in /usr/sbin, or in Postfix's daemon directory."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/lib/postfix/sbin")


@dataclass
class MailStack:
    """A running Dovecot + Postfix pair and the paths the mail server is configured with."""

    directory: Path
    domains: list[str]
    imap_port: int
    lmtp_port: int
    auth_port: int
    submission_port: int
    passwd_file: Path
    mail_root: Path
    mailbox_map: Path
    alias_map: Path
    dovecot_conf: Path
    postfix_dir: Path
    uid: int
    gid: int
    dovecot: subprocess.Popen[bytes] | None = None
    postfix: subprocess.Popen[bytes] | None = None
    started_s: dict[str, float] = field(default_factory=dict)

    @property
    def postmap(self) -> str:
        return f"{find_binary('postmap')} -c {self.postfix_dir}"

    @property
    def doveadm(self) -> str:
        return f"{find_binary('doveadm')} -c {self.dovecot_conf}"

    def settings(self, **overrides: object) -> dict[str, object]:
        """Keyword arguments for ``MailSettings`` pointing at this stack."""
        values: dict[str, object] = {
            "domains": self.domains,
            "passwd_file": self.passwd_file,
            "mail_root": self.mail_root,
            "uid": self.uid,
            "gid": self.gid,
            "imap_host": "127.0.0.1",
            "imap_port": self.imap_port,
            "submission_host": "127.0.0.1",
            "submission_port": self.submission_port,
            "postfix_virtual_mailbox_file": self.mailbox_map,
            "postfix_virtual_alias_file": self.alias_map,
            "postmap": self.postmap,
            "doveadm": self.doveadm,
            "proof_timeout_s": 15.0,
        }
        values.update(overrides)
        return values

    def env(self, **overrides: object) -> dict[str, str]:
        """The same settings as ``PAI_MAIL_*`` environment variables."""
        out = {}
        for key, value in self.settings(**overrides).items():
            text = ",".join(value) if isinstance(value, list) else str(value)
            out[f"PAI_MAIL_{key.upper()}"] = text
        return out

    def start_dovecot(self) -> None:
        dovecot = find_binary("dovecot")
        assert dovecot is not None
        started = time.monotonic()
        with (self.directory / "dovecot.stderr").open("wb") as err:
            self.dovecot = subprocess.Popen(
                [dovecot, "-F", "-c", str(self.dovecot_conf)], stdout=subprocess.DEVNULL, stderr=err
            )
        for port in (self.auth_port, self.imap_port, self.lmtp_port):
            _wait(port, self.dovecot, self.directory / "dovecot.log")
        self.started_s["dovecot"] = time.monotonic() - started

    def stop_dovecot(self) -> None:
        if self.dovecot is not None:
            stop_process(self.dovecot)
            self.dovecot = None

    def start_postfix(self) -> None:
        master = find_binary("master")
        assert master is not None
        started = time.monotonic()
        with (self.directory / "postfix.stderr").open("wb") as err:
            self.postfix = subprocess.Popen(
                [master, "-c", str(self.postfix_dir), "-s"], stdout=subprocess.DEVNULL, stderr=err
            )
        _wait(self.submission_port, self.postfix, self.directory / "log" / "postfix.log")
        self.started_s["postfix"] = time.monotonic() - started

    def stop(self) -> None:
        if self.postfix is not None:
            stop_process(self.postfix)
            self.postfix = None
        self.stop_dovecot()

    def log(self) -> str:
        parts = []
        for path in (self.directory / "dovecot.log", self.directory / "log" / "postfix.log"):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


def _wait(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_for_port(port, proc, timeout=30)
    except (RuntimeError, TimeoutError) as exc:
        text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{exc}\n{text}") from exc


def start_stack(directory: Path, domains: list[str] | None = None) -> MailStack:
    """Write both configs under ``directory``, start Dovecot then Postfix, return the stack."""
    domains = domains or [DOMAIN]
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
    dovecot_gid = grp.getgrnam("dovecot").gr_gid
    postfix_uid = pwd.getpwnam("postfix").pw_uid
    for sub in ("run", "state", "log", "queue", "data", "etc", "mail", "db"):
        (directory / sub).mkdir(exist_ok=True)
        os.chmod(directory / sub, 0o755)
    os.chown(directory / "mail", uid, gid)
    os.chown(directory / "data", postfix_uid, -1)
    stack = MailStack(
        directory=directory,
        domains=domains,
        imap_port=free_port(),
        lmtp_port=free_port(),
        auth_port=free_port(),
        submission_port=free_port(),
        passwd_file=directory / "db" / "passwd",
        mail_root=directory / "mail",
        mailbox_map=directory / "db" / "virtual_mailbox",
        alias_map=directory / "db" / "virtual_alias",
        dovecot_conf=directory / "dovecot.conf",
        postfix_dir=directory / "etc",
        uid=uid,
        gid=gid,
    )
    stack.passwd_file.write_text("# Dovecot users; lines not written by PAI are kept as they are\n")
    os.chown(stack.passwd_file, 0, dovecot_gid)
    os.chmod(stack.passwd_file, 0o640)
    stack.dovecot_conf.write_text(
        DOVECOT_CONF.format(
            tag=directory.name,
            d=directory,
            passwd=stack.passwd_file,
            user=MAIL_USER,
            group=MAIL_GROUP,
            domain=domains[0],
            imap=stack.imap_port,
            lmtp=stack.lmtp_port,
            auth=stack.auth_port,
        )
    )
    main_cf = stack.postfix_dir / "main.cf"
    main_cf.write_text(
        MAIN_CF.format(
            d=directory,
            domain=domains[0],
            domains=", ".join(domains),
            mailboxes=stack.mailbox_map,
            aliases=stack.alias_map,
            lmtp=stack.lmtp_port,
            auth=stack.auth_port,
        )
    )
    (stack.postfix_dir / "master.cf").write_text(MASTER_CF.format(submission=stack.submission_port))
    # Postfix stalls ~1.8 s at start when main.cf is younger than a second: back-date it.
    old = time.time() - 60
    os.utime(main_cf, (old, old))
    postmap = find_binary("postmap")
    assert postmap is not None
    for path in (stack.mailbox_map, stack.alias_map):
        path.write_text("# Postfix map; lines not written by PAI are kept as they are\n")
        subprocess.run([postmap, "-c", str(stack.postfix_dir), str(path)], check=True)
    postfix = find_binary("postfix")
    assert postfix is not None
    # `postfix check` creates the queue directories with their owners and modes.
    subprocess.run(
        [postfix, "-c", str(stack.postfix_dir), "check"], check=True, capture_output=True
    )
    try:
        stack.start_dovecot()
        stack.start_postfix()
    except Exception:
        stack.stop()
        raise
    return stack
