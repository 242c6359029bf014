"""A test site on loopback: good and broken images, console errors, slow responses,
redirects, a page that changes, one that comes up late, and a self-signed TLS endpoint."""

from __future__ import annotations

import datetime as dt
import io
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import require_binary


def _png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _noise_png(size: tuple[int, int] = (120, 90)) -> bytes:
    """A PNG whose pixel data does not compress away (so half of it is really missing)."""
    import random

    from PIL import Image

    rng = random.Random(7)
    image = Image.frombytes(
        "RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    )
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


LAZY_IMAGES = [f"/img/lazy{i}.png" for i in range(4)]
LAZY_POST = (
    """<!doctype html><html><head><title>A long post</title></head>
<body style="margin:0"><h1>A long post</h1><p style="height:14000px">words</p>"""
    + "".join(
        f'<p style="height:900px"><img src="{src}" loading="lazy" width="40" height="30"></p>'
        for src in LAZY_IMAGES
    )
    + "</body></html>"
)

# Reports in its title which state an earlier visit could have left (then leaves all of it):
# storage, a cookie, window.name, an IndexedDB database, a dialog and a popup.
STATE_PAGE = """<!doctype html><html><head><title>state</title></head><body><script>
(async () => {
  alert('hello');
  const found = [];
  if (localStorage.getItem('k')) found.push('localStorage');
  if (sessionStorage.getItem('k')) found.push('sessionStorage');
  if (document.cookie.includes('c=1')) found.push('cookie');
  if (window.name) found.push('window.name');
  if ((await indexedDB.databases()).length) found.push('indexedDB');
  localStorage.setItem('k', 'v'); sessionStorage.setItem('k', 'v');
  document.cookie = 'c=1; max-age=999'; window.name = 'left over';
  await new Promise(r => { const q = indexedDB.open('db', 1);
    q.onupgradeneeded = () => q.result.createObjectStore('s');
    q.onsuccess = () => { q.result.close(); r(); }; });
  window.open('/wait');
  document.title = 'found:' + found.join(',');
  const done = document.createElement('p'); done.id = 'done'; done.textContent = 'done';
  document.body.append(done);
})();
</script></body></html>"""

# Never quiet: a new image every 50 ms, for as long as the page is open.
LATE_IMAGES = """<!doctype html><html><head><title>Late</title></head><body>
<img src="/img/a.png?n=start"><script>
let n = 0;
setInterval(() => { const i = new Image(); i.src = '/img/b.png?n=' + (n++);
  document.body.append(i); }, 50);
</script></body></html>"""

# Images that exist only once a slow request has answered (after the load event).
FETCHED_IMAGES = """<!doctype html><html><head><title>Fetched</title></head><body><script>
fetch('/slow?ms=300').then(r => r.text()).then(() => {
  for (const src of ['/img/a.png', '/img/b.png']) {
    const i = new Image(); i.src = src; document.body.append(i); }
});
</script></body></html>"""

PAGES = {
    "/state": STATE_PAGE,
    "/late-images": LATE_IMAGES,
    "/fetched-images": FETCHED_IMAGES,
    "/": """<!doctype html><html><head><title>PAI Test Site</title>
<style>body{margin:0;font:20px sans-serif;background:#fff} .hero{height:120px;
background-image:url('/img/bg.png')}</style></head>
<body><h1>Hello from PAI</h1><div class="hero"></div>
<img src="/img/a.png" alt="a"><img src="/img/b.png" alt="b">
<p style="height:1500px">tall page</p></body></html>""",
    "/broken": """<!doctype html><html><head><title>Broken</title></head><body>
<img src="/img/a.png"><img src="/img/missing.png"><img src="/img/corrupt.png">
<div style="height:50px;background-image:url('/img/nobg.png')"></div></body></html>""",
    "/console": """<!doctype html><html><head><title>Console</title></head><body>
<p>ok</p><script>console.error("boom from the page")</script></body></html>""",
    "/lazy-post": LAZY_POST,
    "/truncated": """<!doctype html><html><head><title>Truncated</title></head><body>
<img src="/img/a.png"><img src="/img/half.png"></body></html>""",
    "/wait": """<!doctype html><html><head><title>Wait</title></head><body><p>no app here</p>
</body></html>""",
}


@dataclass
class Site:
    base: str
    tls_base: str
    cert_path: Path
    state: dict[str, int | bool] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base + path


def _handler(
    state: dict[str, int | bool], images: dict[str, bytes]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send(
            self,
            code: int,
            body: bytes,
            ctype: str = "text/html; charset=utf-8",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            if path in images:
                state[f"hits:{path}"] = int(state.get(f"hits:{path}", 0)) + 1
                self._send(200, images[path], "image/png")
            elif path == "/img/corrupt.png":
                self._send(200, b"this is not a png", "image/png")
            elif path.startswith("/img/"):
                self._send(404, b"not found", "text/plain")
            elif path == "/changing":
                color = "#c00" if state.get("changed") else "#fff"
                body = (
                    f"<html><body style='margin:0;background:{color}'><h1>Version "
                    f"{2 if state.get('changed') else 1}</h1></body></html>"
                )
                self._send(200, body.encode())
            elif path == "/slow":
                state["slow_hits"] = int(state.get("slow_hits", 0)) + 1
                time.sleep(int(query.get("ms", ["200"])[0]) / 1000)
                self._send(200, b"<html><title>slow</title>slow</html>")
            elif path == "/redirect":
                self._send(302, b"", headers={"Location": "/hop"})
            elif path == "/hop":
                self._send(301, b"", headers={"Location": "/"})
            elif path == "/eventually":
                state["hits"] = int(state.get("hits", 0)) + 1
                if int(state["hits"]) <= int(state.get("down_for", 3)):
                    self._send(503, b"starting")
                else:
                    self._send(200, b"<html>up and running</html>")
            elif path.startswith("/status/"):
                self._send(int(path.rsplit("/", 1)[1]), b"status page")
            elif path in PAGES:
                self._send(200, PAGES[path].encode(), headers={"X-Served-By": "pai-test-site"})
            else:
                self._send(404, b"<html>no such page</html>")

    return Handler


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    state: dict[str, int | bool] = {}
    images = {
        "/img/a.png": _png((0, 120, 255)),
        "/img/b.png": _png((255, 160, 0)),
        "/img/bg.png": _png((10, 200, 10), (200, 120)),
        **{src: _png((200, 0, 200)) for src in LAZY_IMAGES},
    }
    whole = _noise_png()
    images["/img/half.png"] = whole[: len(whole) // 2]  # header intact, data cut in half
    handler = _handler(state, images)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    secure.socket = ctx.wrap_socket(secure.socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (plain, secure)]
    for t in threads:
        t.start()
    yield Site(
        f"http://127.0.0.1:{plain.server_address[1]}",
        f"https://localhost:{secure.server_address[1]}",
        cert,
        state,
    )
    for s in (plain, secure):
        s.shutdown()
        s.server_close()


@pytest.fixture
def chromium() -> str:
    return require_binary("chromium", package="chromium")
