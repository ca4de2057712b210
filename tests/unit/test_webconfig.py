"""--web.config.file: parsing and checking (one clear message per mistake, no secret in it), the TLS
context, basic auth and its cache, the middleware, the flag and the CLI; and agreement with promtool."""

from __future__ import annotations

import base64
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.cli import main
from exporter.config import ConfigError, load_settings
from exporter.durations import GO_SYNTAX, parse_duration
from exporter.snapshot import SnapshotStore
from exporter.web.auth import BasicAuth, parse_basic_auth
from exporter.web.config import RateLimit, WebConfig, WebConfigError, parse_web_config
from exporter.web.middleware import rate_bucket
from exporter.web.server import create_app
from exporter.web.tls import build_ssl_context, load_web_config, san_allowed
from tests.e2e.binaries import require_binary
from tests.pki import Pki, issue, make_pki

ENV = {"NF_API_TOKEN": "nf-test-token"}
# Cost 4: the cheapest bcrypt, so that the tests that do pay for it stay fast.
ALICE_PASSWORD = "alice-s3cret"
ALICE_HASH = bcrypt.hashpw(ALICE_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
BOB_HASH = bcrypt.hashpw(b"bob-pw", bcrypt.gensalt(4)).decode()


def parse(text: str, base_dir: Path = Path("/etc/exporter")) -> WebConfig:
    return parse_web_config(text, source="web.yml", base_dir=base_dir)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


# --- Parsing -----------------------------------------------------------------------------------------


def test_full_config_is_parsed_with_paths_relative_to_the_config_directory() -> None:
    config = parse(
        f"""
tls_server_config:
  cert_file: tls/server.crt
  key_file: /abs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: [prometheus.test]
  min_version: TLS13
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: {ALICE_HASH}
  bob: '{BOB_HASH}'
rate_limit:
  interval: 500ms
  burst: 5
"""
    )
    tls = config.tls
    assert tls is not None
    assert tls.cert_file == Path("/etc/exporter/tls/server.crt")
    assert tls.key_file == Path("/abs/server.key")
    assert tls.client_ca_file == Path("/etc/exporter/ca.crt")
    assert tls.verify_mode == ssl.CERT_REQUIRED
    assert tls.client_allowed_sans == ("prometheus.test",)
    assert (tls.min_version, tls.max_version) == ("TLS13", "TLS13")
    assert tls.prefer_server_cipher_suites is False
    assert config.http2 is False
    assert dict(config.headers) == {
        "X-Frame-Options": "deny",
        "X-Content-Type-Options": "nosniff",
        "Strict-Transport-Security": "max-age=31536000",
    }
    assert dict(config.users) == {"alice": ALICE_HASH, "bob": BOB_HASH}
    assert config.rate_limit == RateLimit(interval=0.5, burst=5)
    assert ALICE_HASH not in repr(config)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# nothing\n",
        "tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n",
        "tls_server_config: {min_version: TLS13}\n",  # as in the toolkit: no cert/key/CA/auth = plain HTTP
        "rate_limit: {interval: 0, burst: 0}\n",
        "http_server_config: {headers: {X-XSS-Protection: ''}}\n",  # blank = unset
    ],
)
def test_configs_that_turn_nothing_on(text: str) -> None:
    config = parse(text)
    assert config.tls is None
    assert not config.users
    assert not config.headers
    assert config.rate_limit is None


BAD_CONFIGS = [
    ("nonsense: 1\n", "web.yml: unknown field 'nonsense' (known: tls_server_config, "),
    ("- a\n- b\n", "web.yml: must be a mapping"),
    ("tls_server_config: {cert_fil: a}\n", "web.yml: tls_server_config: unknown field 'cert_fil'"),
    ("tls_server_config: {cert_file: a}\n", "web.yml: tls_server_config: missing key_file (or key)"),
    ("tls_server_config: {key_file: a}\n", "web.yml: tls_server_config: missing cert_file (or cert)"),
    (
        "tls_server_config: {cert_file: a, cert: b, key_file: c}\n",
        "web.yml: tls_server_config: give the certificate either inline (cert) or as a file",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, client_auth_type: Bogus}\n",
        "web.yml: tls_server_config.client_auth_type: unknown client_auth_type 'Bogus' (use one of "
        "NoClientCert,",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, client_ca_file: ca.crt}\n",
        "web.yml: tls_server_config: a client CA is configured but client_auth_type is NoClientCert",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, client_auth_type: VerifyClientCertIfGiven, "
        "client_allowed_sans: [x]}\n",
        "web.yml: tls_server_config: client_allowed_sans needs client_auth_type RequireAnyClientCert or",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, min_version: SSL30}\n",
        "web.yml: tls_server_config.min_version: unknown TLS version 'SSL30'",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, max_version: TLS12}\n",
        "web.yml: tls_server_config: min_version TLS13 is above max_version TLS12",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]}\n",
        "web.yml: tls_server_config.cipher_suites: unknown cipher suite 'TLS_RSA_WITH_RC4_128_SHA'",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, curve_preferences: [X448]}\n",
        "web.yml: tls_server_config.curve_preferences: unknown curve 'X448'",
    ),
    (
        "tls_server_config: {cert_file: a, key_file: b, cipher_suites: TLS_AES_128_GCM_SHA256}\n",
        "web.yml: tls_server_config.cipher_suites: must be a list of strings",
    ),
    (
        "tls_server_config: {cert_file: [a], key_file: b}\n",
        "web.yml: tls_server_config.cert_file: must be a string",
    ),
    (
        "http_server_config: {headers: {Authorization: Basic x}}\n",
        "web.yml: http_server_config.headers: header 'Authorization' cannot be configured (allowed: ",
    ),
    (
        "http_server_config: {headers: {x-frame-options: deny}}\n",
        "web.yml: http_server_config.headers: header 'x-frame-options' cannot be configured",
    ),
    (
        "http_server_config: {headers: {X-Frame-Options: DENY}}\n",
        "web.yml: http_server_config.headers.X-Frame-Options: invalid value 'DENY' "
        "(use one of deny, sameorigin)",
    ),
    (
        'http_server_config: {headers: {Content-Security-Policy: "a\\r\\nSet-Cookie: x"}}\n',
        "web.yml: http_server_config.headers.Content-Security-Policy: must be printable ASCII on one line",
    ),
    ("http_server_config: {http2: maybe}\n", "web.yml: http_server_config.http2: must be true or false"),
    ("rate_limit: {interval: 1s, burst: 0}\n", "web.yml: rate_limit.burst: must be at least 1"),
    ("rate_limit: {interval: soon, burst: 1}\n", "web.yml: rate_limit.interval: invalid duration 'soon'"),
    ("rate_limit: {interval: 1s, burst: 1, x: 1}\n", "web.yml: rate_limit: unknown field 'x'"),
    ("basic_auth_users: [alice]\n", "web.yml: basic_auth_users: must be a mapping of user names to bcrypt"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_each_mistake_is_one_clear_message(text: str, message: str) -> None:
    with pytest.raises(WebConfigError) as caught:
        parse(text)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


SECRET_HASH = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"


@pytest.mark.parametrize(
    ("hashed", "message"),
    [
        ("alice-s3cret", "web.yml: basic_auth_users.alice: not a bcrypt hash"),  # a password, not a hash
        ("12345", "web.yml: basic_auth_users.alice: not a bcrypt hash"),
        ("", "web.yml: basic_auth_users.alice: not a bcrypt hash"),
        (SECRET_HASH[:-3], "web.yml: basic_auth_users.alice: not a bcrypt hash (expected $2y$, $2b$ or $2a$"),
        (SECRET_HASH[:-1] + "!", "web.yml: basic_auth_users.alice: not a bcrypt hash (expected"),
        (
            SECRET_HASH.replace("$10$", "$03$"),
            "web.yml: basic_auth_users.alice: bcrypt cost 03 is outside 4..31",
        ),
        (SECRET_HASH.replace("$2y$", "$2$"), "web.yml: basic_auth_users.alice: not a bcrypt hash (expected"),
    ],
)
def test_a_bad_hash_is_named_by_its_user_and_never_echoed(hashed: str, message: str) -> None:
    with pytest.raises(WebConfigError) as caught:
        parse(f"basic_auth_users:\n  alice: '{hashed}'\n")
    assert str(caught.value).startswith(message), str(caught.value)
    if hashed:
        assert hashed not in str(caught.value)


def test_a_user_given_twice_is_refused() -> None:
    with pytest.raises(
        WebConfigError, match=r"^web\.yml: invalid YAML: line 3, column 3: key 'alice' is given twice$"
    ):
        parse(f"basic_auth_users:\n  alice: {ALICE_HASH}\n  alice: {BOB_HASH}\n")


def test_invalid_yaml_names_the_line_but_does_not_quote_it() -> None:
    text = f"basic_auth_users:\n  alice: {SECRET_HASH}\n   bob: {SECRET_HASH}: x\n"
    with pytest.raises(WebConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith("web.yml: invalid YAML: line 3, column "), message
    assert SECRET_HASH not in message
    assert "\n" not in message


def test_an_inline_key_is_never_echoed() -> None:
    with pytest.raises(WebConfigError) as caught:
        parse("tls_server_config: {cert: CERTIFICATE, key: THE-PRIVATE-KEY, bogus: 1}\n")
    assert "THE-PRIVATE-KEY" not in str(caught.value)
    config = parse("tls_server_config: {cert: CERTIFICATE, key: THE-PRIVATE-KEY}\n")
    assert "THE-PRIVATE-KEY" not in repr(config)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0), ("250us", 0.00025), ("0", 0.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, GO_SYNTAX) == pytest.approx(seconds)
    assert parse_duration(1_000_000_000, GO_SYNTAX) == 1.0


@pytest.mark.parametrize("text", ["", "1", "1d", "s", "1s2", "abc", "1.2.3s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text, GO_SYNTAX)


# --- Files and TLS -----------------------------------------------------------------------------------


def write_config(pki: Pki, body: str, name: str = "web.yml") -> Path:
    path = pki.directory / name
    path.write_text(body, encoding="utf-8")
    return path


def tls_body(pki: Pki, extra: str = "") -> str:
    # Relative paths: the config file lives in the same directory as the certificates.
    return (
        f"tls_server_config:\n  cert_file: {pki.server.cert.name}\n  key_file: {pki.server.key.name}\n"
        + extra
    )


def test_relative_certificate_paths_are_read_from_the_config_directory(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_web_config(write_config(pki, tls_body(pki)))
    assert config.tls is not None
    assert config.tls.cert_file == pki.server.cert


def test_a_missing_file_is_named_with_its_resolved_path(pki: Pki) -> None:
    path = write_config(pki, "tls_server_config: {cert_file: nope.crt, key_file: server.key}\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert str(caught.value) == (
        f"{path}: tls_server_config.cert_file: cannot read {pki.directory / 'nope.crt'}: no such file"
    )


def test_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match=r": cannot read: No such file or directory$"):
        load_web_config(tmp_path / "absent.yml")


def test_a_key_of_another_certificate_is_refused(pki: Pki) -> None:
    body = f"tls_server_config: {{cert_file: server.crt, key_file: {pki.client.key.name}}}\n"
    with pytest.raises(
        WebConfigError, match=r"tls_server_config: the key does not belong to the certificate$"
    ):
        load_web_config(write_config(pki, body))


def test_an_encrypted_key_is_refused_without_prompting(pki: Pki) -> None:
    pair = issue(pki.ca, pki.directory, "encrypted", server=True, dns=("localhost",), key_password=b"pw")
    body = f"tls_server_config: {{cert_file: {pair.cert.name}, key_file: {pair.key.name}}}\n"
    with pytest.raises(WebConfigError, match=r"tls_server_config: the key is encrypted"):
        load_web_config(write_config(pki, body))


def test_a_file_that_is_not_pem_is_refused(pki: Pki) -> None:
    (pki.directory / "junk.crt").write_text("not a certificate\n")
    body = "tls_server_config: {cert_file: junk.crt, key_file: server.key}\n"
    with pytest.raises(WebConfigError, match=r"tls_server_config: cannot load the certificate and key"):
        load_web_config(write_config(pki, body))


def test_a_client_ca_without_certificates_is_refused(pki: Pki) -> None:
    (pki.directory / "empty-ca.crt").write_text("nothing here\n")
    body = tls_body(pki, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: empty-ca.crt\n")
    with pytest.raises(WebConfigError, match=r"tls_server_config\.client_ca_file: no PEM certificate found"):
        load_web_config(write_config(pki, body))


def test_inline_certificate_key_and_client_ca(pki: Pki) -> None:
    def block(path: Path) -> str:
        return "|\n" + "".join(f"    {line}\n" for line in path.read_text().splitlines())

    body = (
        "tls_server_config:\n"
        f"  cert: {block(pki.server.cert)}"
        f"  key: {block(pki.server.key)}"
        f"  client_ca: {block(pki.ca.path)}"
        "  client_auth_type: RequireAndVerifyClientCert\n"
    )
    config = load_web_config(write_config(pki, body))
    context = build_ssl_context(config)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]


@pytest.mark.parametrize(
    ("auth", "mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("RequireClientCert", ssl.CERT_REQUIRED),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_types(pki: Pki, auth: str, mode: ssl.VerifyMode) -> None:
    ca = "  client_ca_file: test-ca.crt\n" if auth != "NoClientCert" else ""
    config = load_web_config(write_config(pki, tls_body(pki, f"  client_auth_type: {auth}\n{ca}")))
    assert build_ssl_context(config).verify_mode == mode


def test_versions_ciphers_and_curves_reach_the_context(pki: Pki) -> None:
    extra = (
        "  min_version: TLS12\n  max_version: TLS12\n"
        "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]\n"
        "  curve_preferences: [CurveP384]\n"
    )
    context = build_ssl_context(load_web_config(write_config(pki, tls_body(pki, extra))))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES256-GCM-SHA384"]
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE


def test_notes_say_what_is_on_and_where_python_differs(pki: Pki) -> None:
    plain = parse(f"basic_auth_users: {{alice: '{ALICE_HASH}'}}\n")
    assert [m for _, m in plain.notes()] == [
        "web config web.yml: plain HTTP, basic auth for 1 user(s)",
        "basic auth without TLS: passwords cross the network in clear text",
    ]
    extra = "  client_auth_type: RequireAnyClientCert\n  curve_preferences: [X25519, CurveP256]\n"
    messages = [m for _, m in load_web_config(write_config(pki, tls_body(pki, extra))).notes()]
    assert messages[0].endswith("HTTPS, client certificates: RequireAnyClientCert, no basic auth")
    assert "also verified against the client CA" in messages[1]
    assert "only the first, X25519, is used" in messages[2]


def test_san_matching() -> None:
    cert = {
        "subjectAltName": (("DNS", "a.test"), ("IP Address", "2001:DB8:0:0:0:0:0:1\n"), ("URI", "spiffe://x"))
    }
    assert san_allowed(cert, ["a.test"])
    assert san_allowed(cert, ["2001:db8::1"])
    assert san_allowed(cert, ["spiffe://x"])
    assert not san_allowed(cert, ["b.test", "A.test"])
    assert not san_allowed({}, ["a.test"])
    assert not san_allowed(None, ["a.test"])


# --- Basic auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("alice", "pw"), (b"alice", b"pw")),
        ("basic " + base64.b64encode(b"alice:p:w").decode(), (b"alice", b"p:w")),
        ("BASIC " + base64.b64encode(b"alice:").decode(), (b"alice", b"")),
        ("Basic " + base64.b64encode(b"alice").decode(), None),
        ("Basic !!!", None),
        ("Basic YWxpY2U6cHc", None),  # missing padding: Go's StdEncoding refuses it too
        ("Bearer abc", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_basic_auth(header: str | None, expected: tuple[bytes, bytes] | None) -> None:
    assert parse_basic_auth(header) == expected


@pytest.fixture
def checkpw_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every bcrypt.checkpw call the exporter makes, by hash."""
    calls: list[bytes] = []
    real: Callable[[bytes, bytes], bool] = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls


async def test_basic_auth_checks_and_caches_only_what_verified(checkpw_calls: list[bytes]) -> None:
    auth = BasicAuth({"alice": ALICE_HASH, "bob": BOB_HASH})
    for _ in range(5):
        assert await auth.check(basic("alice", ALICE_PASSWORD))
    assert len(checkpw_calls) == 1  # verified once, then remembered
    assert not await auth.check(basic("alice", "wrong"))
    assert not await auth.check(basic("alice", "wrong"))
    assert len(checkpw_calls) == 3  # failures are not remembered
    assert await auth.check(basic("bob", "bob-pw"))
    assert not await auth.check(basic("Alice", ALICE_PASSWORD))  # user names are exact
    assert not await auth.check(basic("mallory", ALICE_PASSWORD))
    # An unknown user still costs a bcrypt check, against a real hash: timing does not tell.
    assert checkpw_calls[-1] == ALICE_HASH.encode()
    assert not await auth.check(None)
    assert not await auth.check("Bearer x")


async def test_the_cache_is_bounded(checkpw_calls: list[bytes]) -> None:
    # Three users cannot be made to verify with one hash; use long passwords that bcrypt truncates.
    base = ALICE_PASSWORD.encode() + b"x" * (72 - len(ALICE_PASSWORD))
    alice72 = bcrypt.hashpw(base, bcrypt.gensalt(4)).decode()
    auth = BasicAuth({"alice": alice72}, cache_size=2)
    passwords = [base.decode() + suffix for suffix in ("1", "2", "3")]
    for password in passwords:  # bcrypt reads 72 bytes, as Go's does: all three verify
        assert await auth.check(basic("alice", password))
    assert len(checkpw_calls) == 3
    assert await auth.check(basic("alice", passwords[2]))
    assert len(checkpw_calls) == 3
    assert await auth.check(basic("alice", passwords[0]))  # evicted: checked again
    assert len(checkpw_calls) == 4


async def test_a_nul_byte_in_a_password_is_just_wrong() -> None:
    auth = BasicAuth({"alice": ALICE_HASH})
    header = "Basic " + base64.b64encode(b"alice:a\x00b").decode()
    assert not await auth.check(header)


def test_token_bucket() -> None:
    now = [100.0]
    bucket = rate_bucket(RateLimit(interval=1.0, burst=2), now[0])
    assert [bucket.allow(now[0]) for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert not bucket.allow(now[0])
    now[0] += 0.5
    assert bucket.allow(now[0])
    now[0] += 10
    assert [bucket.allow(now[0]) for _ in range(3)] == [True, True, False]


# --- The app with the middleware ---------------------------------------------------------------------


def app_client(config: WebConfig) -> httpx.AsyncClient:
    store = SnapshotStore()
    app = create_app(
        render_metrics=lambda: b"# EOF\n",
        snapshot=lambda: store.current,
        telemetry_path="/metrics",
        version="test",
        web_config=config,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_basic_auth_covers_every_path_and_headers_every_response() -> None:
    config = parse(
        f"basic_auth_users: {{alice: '{ALICE_HASH}'}}\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n"
        "    Content-Security-Policy: default-src 'self'\n"
    )
    async with app_client(config) as client:
        for path in ("/", "/metrics", "/-/healthy", "/-/ready", "/nowhere"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Basic"
            assert refused.headers["x-frame-options"] == "sameorigin"
            assert refused.text == "Unauthorized\n"
            wrong = await client.get(path, headers={"Authorization": basic("alice", "nope")})
            assert wrong.status_code == 401, path
        ok = await client.get("/metrics", headers={"Authorization": basic("alice", ALICE_PASSWORD)})
        assert ok.status_code == 200
        assert ok.headers["x-frame-options"] == "sameorigin"
        assert ok.headers["content-security-policy"] == "default-src 'self'"
        assert "www-authenticate" not in ok.headers
        healthy = await client.get("/-/healthy", headers={"Authorization": basic("alice", ALICE_PASSWORD)})
        assert healthy.status_code == 200


async def test_rate_limit_answers_429() -> None:
    config = parse("rate_limit: {interval: 1h, burst: 2}\n")
    async with app_client(config) as client:
        codes = [(await client.get("/-/healthy")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


# --- The flag and the CLI ----------------------------------------------------------------------------


def test_the_flag_checks_the_file_at_start(pki: Pki) -> None:
    good = write_config(pki, tls_body(pki, f"basic_auth_users:\n  alice: {ALICE_HASH}\n"))
    assert load_settings(["--web.config.file", str(good)], ENV).web_config_file == good
    assert load_settings([], ENV).web_config_file is None
    bad = write_config(pki, f"basic_auth_users:\n  alice: {ALICE_PASSWORD}\n", name="bad.yml")
    with pytest.raises(ConfigError) as caught:
        load_settings(["--web.config.file", str(bad)], ENV)
    assert str(caught.value) == f"--web.config.file: {bad}: basic_auth_users.alice: not a bcrypt hash"


def test_cli_exits_2_with_one_line_for_a_bad_file(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NF_API_TOKEN", "nf-test-token")
    monkeypatch.chdir(pki.directory)
    write_config(pki, f"basic_auth_users:\n  alice: {ALICE_HASH}\n  bob: {SECRET_HASH[:-2]}\n")
    assert main(["--web.config.file", "web.yml"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "northflank-backup-exporter: error: --web.config.file: web.yml: basic_auth_users.bob: not a bcrypt "
        "hash (expected $2y$, $2b$ or $2a$, a two-digit cost and 53 characters of salt and hash, as "
        "`htpasswd -nBC 10 \"\" | tr -d ':\\n'` prints)\n"
    )
    assert SECRET_HASH[:-2] not in err
    assert ALICE_HASH not in err


# --- Agreement with promtool -------------------------------------------------------------------------


def promtool_accepts(path: Path) -> tuple[bool, str]:
    result = subprocess.run(
        [require_binary("promtool"), "check", "web-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0, result.stdout + result.stderr


GOOD_FOR_PROMTOOL = {
    "empty": "",
    "users": f"basic_auth_users:\n  alice: {ALICE_HASH}\n  bob: '{BOB_HASH}'\n",
    "tls": "{tls}",
    "tls-mtls": "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: test-ca.crt\n",
    "tls-request": "{tls}  client_auth_type: RequestClientCert\n",
    "tls-require-any": "{tls}  client_auth_type: RequireAnyClientCert\n  client_ca_file: test-ca.crt\n",
    "tls-if-given": "{tls}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: test-ca.crt\n",
    "tls-tuned": "{tls}  min_version: TLS13\n  max_version: TLS13\n  prefer_server_cipher_suites: false\n"
    "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]\n"
    "  curve_preferences: [CurveP256, X25519]\n",
    "everything": "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: test-ca.crt\n"
    "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n"
    "    X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1; mode=block\n"
    "    Strict-Transport-Security: max-age=31536000; includeSubDomains\n"
    "    Content-Security-Policy: default-src 'self'\n"
    f"basic_auth_users:\n  alice: {ALICE_HASH}\n",
    "plain-with-headers": "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n",
}

BAD_FOR_PROMTOOL = {
    "unknown-field": "tls_server_config:\n  cert_fil: x\n",
    "bad-auth-type": "{tls}  client_auth_type: Sometimes\n",
    "ca-without-auth": "{tls}  client_ca_file: test-ca.crt\n",
    "no-key": "tls_server_config:\n  cert_file: server.crt\n",
    "authorization-header": "http_server_config:\n  headers:\n    Authorization: x\n",
    "upper-case-deny": "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
    "not-a-hash": "basic_auth_users:\n  alice: secret\n",
    "cost-3": "basic_auth_users:\n  alice: '" + SECRET_HASH.replace("$10$", "$03$") + "'\n",
    "duplicate-user": f"basic_auth_users:\n  alice: {ALICE_HASH}\n  alice: {BOB_HASH}\n",
    "unknown-cipher": "{tls}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256]\n",
    "unknown-curve": "{tls}  curve_preferences: [X448]\n",
    "unknown-version": "{tls}  min_version: SSL30\n",
    "missing-client-ca": "{tls}  client_auth_type: RequestClientCert\n  client_ca_file: absent-ca.crt\n",
    "missing-cert-file": "tls_server_config:\n  cert_file: absent.crt\n  key_file: server.key\n",
}


@pytest.mark.parametrize("name", sorted(GOOD_FOR_PROMTOOL))
def test_what_promtool_accepts_is_accepted(pki: Pki, name: str) -> None:
    path = write_config(pki, GOOD_FOR_PROMTOOL[name].replace("{tls}", tls_body(pki)), name=f"{name}.yml")
    accepted, output = promtool_accepts(path)
    assert accepted, output
    config = load_web_config(path)
    if config.tls is not None:
        build_ssl_context(config)


@pytest.mark.parametrize("name", sorted(BAD_FOR_PROMTOOL))
def test_what_promtool_refuses_is_refused(pki: Pki, name: str) -> None:
    path = write_config(pki, BAD_FOR_PROMTOOL[name].replace("{tls}", tls_body(pki)), name=f"{name}.yml")
    accepted, output = promtool_accepts(path)
    assert not accepted, output
    with pytest.raises(WebConfigError):
        load_web_config(path)
