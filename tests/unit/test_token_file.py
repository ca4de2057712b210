"""The API token file: what is refused at start, and how rotations (rename, kubelet symlink swap) are seen.

Also the client's side (a 401 reads the file again at once and retries with a new token) and the web config
middleware's swap on SIGHUP. No token ever appears in a message, a log line or a repr.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from pydantic import SecretStr

from exporter.apitoken import ApiToken, ReloadableToken, TokenError, TokenFile, check_token, read_token_file
from exporter.clock import FixedClock
from exporter.config import ConfigError, load_settings
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import AuthError
from exporter.web.config import parse_web_config
from exporter.web.middleware import WebSecurityMiddleware

TOKEN_A = "nf-token-A-4b7e91c2d3"
TOKEN_B = "nf-token-B-0f5a62e8c1"


class Monotonic:
    """An injected monotonic clock: the file is looked at only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        text = record.getMessage()
        for secret in (TOKEN_A, TOKEN_B):
            assert secret not in text
            assert secret.lower() not in text.lower()


def write_atomically(path: Path, text: str) -> None:
    """What Docker, Vault agents and careful editors do: a new file renamed over the old one."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)


class KubeletVolume:
    """A Secret volume as the kubelet writes it: ``token -> ..data/token``, ``..data -> ..<timestamp>``;
    an update writes a new timestamped directory and renames a new ``..data`` symlink over the old one."""

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.generation = 0
        root.mkdir()
        self._write(token)
        (root / "token").symlink_to("..data/token")

    @property
    def path(self) -> Path:
        return self.root / "token"

    def _write(self, token: str) -> None:
        self.generation += 1
        directory = self.root / f"..2026_11_28_08_00_0{self.generation}.12345"
        directory.mkdir()
        (directory / "token").write_text(token + "\n", encoding="utf-8")
        link = self.root / "..data_tmp"
        link.symlink_to(directory.name)
        os.replace(link, self.root / "..data")

    def update(self, token: str) -> None:
        old = (self.root / "..data").resolve()
        self._write(token)
        for child in old.iterdir():
            child.unlink()
        old.rmdir()


def rotation_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "changed" in r.getMessage()]


# -- rotation -------------------------------------------------------------------------------------------


def test_a_file_renamed_over_the_old_one_is_used_after_the_check_interval(
    tmp_path: Path, monotonic: Monotonic, logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A + "\n")
    token = TokenFile(path, check_interval=5.0, monotonic=monotonic)
    assert token.get_secret_value() == TOKEN_A

    write_atomically(path, TOKEN_B + "\n")
    monotonic.now += 4.9
    assert token.get_secret_value() == TOKEN_A  # the stat is not taken on every request
    monotonic.now += 0.1
    assert token.get_secret_value() == TOKEN_B
    assert token.get_secret_value() == TOKEN_B
    assert rotation_lines(logs) == [f"token file {path} changed: using the new API token from now on"]


def test_a_kubelet_symlink_swap_is_followed(
    tmp_path: Path, monotonic: Monotonic, logs: pytest.LogCaptureFixture
) -> None:
    volume = KubeletVolume(tmp_path / "secret", TOKEN_A)
    token = TokenFile(volume.path, check_interval=5.0, monotonic=monotonic)
    assert token.get_secret_value() == TOKEN_A
    volume.update(TOKEN_B)
    monotonic.now += 5
    assert token.get_secret_value() == TOKEN_B
    volume.update(TOKEN_A)
    assert token.reload() is True  # SIGHUP or a 401: at once, whatever the interval
    assert token.get_secret_value() == TOKEN_A
    assert len(rotation_lines(logs)) == 2


def test_reload_says_whether_the_token_changed(tmp_path: Path, monotonic: Monotonic) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    token = TokenFile(path, monotonic=monotonic)
    assert token.reload() is False
    path.touch()  # a new mtime, the same token: not a rotation
    assert token.reload() is False
    write_atomically(path, TOKEN_B)
    assert token.reload() is True
    assert token.get_secret_value() == TOKEN_B


def test_a_broken_rotation_keeps_the_token_in_use_with_one_line_per_problem(
    tmp_path: Path, monotonic: Monotonic, logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    token = TokenFile(path, check_interval=1.0, monotonic=monotonic)
    write_atomically(path, "")
    for _ in range(5):
        monotonic.now += 1
        assert token.get_secret_value() == TOKEN_A
    path.unlink()
    for _ in range(5):
        monotonic.now += 1
        assert token.get_secret_value() == TOKEN_A
    warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"token file {path} is empty; keeping the API token in use",
        f"cannot read token file {path}: No such file or directory; keeping the API token in use",
    ]
    write_atomically(path, TOKEN_B)
    monotonic.now += 1
    assert token.get_secret_value() == TOKEN_B
    assert f"token file {path} can be read again" in [r.getMessage() for r in logs.records]


def test_a_clock_that_goes_back_does_not_stop_the_checks(tmp_path: Path, monotonic: Monotonic) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    token = TokenFile(path, check_interval=5.0, monotonic=monotonic)
    write_atomically(path, TOKEN_B)
    monotonic.now -= 100
    assert token.get_secret_value() == TOKEN_B


def test_the_repr_names_the_file_never_the_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    token = TokenFile(path)
    for text in (repr(token), str(token), f"{token}", f"{token!r}"):
        assert TOKEN_A not in text
        assert str(path) in text
    assert not hasattr(token, "__dict__")  # slots: nothing like vars(token) to dump the secret
    assert isinstance(token, ReloadableToken)
    assert not isinstance(SecretStr(TOKEN_A), ReloadableToken)
    typed: ApiToken = token
    assert typed.get_secret_value() == TOKEN_A


# -- what a token file may hold ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        TOKEN_A,
        TOKEN_A + "\n",
        f"  {TOKEN_A}\t\r\n\n\n",
        f"\n\n{TOKEN_A}\n",
        "\ufeff" + TOKEN_A + "\n",  # written by a Windows editor
        "\ufeff" + TOKEN_A + "\r\n",
    ],
)
def test_the_token_is_stripped_of_a_bom_and_whitespace(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content.encode("utf-8"))
    assert TokenFile(path).get_secret_value() == TOKEN_A


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_bytes(b""), "token file {p} is empty"),
        (lambda p: p.write_bytes(b" \n\t\r\n"), "token file {p} is empty"),
        (lambda p: p.write_bytes("\ufeff\n".encode()), "token file {p} is empty"),
        (lambda p: p.write_text(f"{TOKEN_A}\n{TOKEN_B}\n"), "token file {p} has more than one line"),
        (lambda p: p.write_text(f"{TOKEN_A}\n\n# comment\n"), "token file {p} has more than one line"),
        (lambda p: p.write_bytes(TOKEN_A.encode() + b"\xff\xfe"), "token file {p} is not UTF-8 text"),
        (lambda p: p.write_bytes(TOKEN_A.encode("utf-16")), "token file {p} is not UTF-8 text"),
        (lambda p: None, "cannot read token file {p}: no such file"),
        (lambda p: p.mkdir(), "token file {p} is a directory"),
        (_fifo, "token file {p} is not a regular file"),
        (
            lambda p: p.write_bytes(b"x" * (65 * 1024)),
            "token file {p} is larger than 64 KiB: not a token file",
        ),
        (lambda p: p.write_text(f"{TOKEN_A} {TOKEN_B}"), "inside the token"),
        (lambda p: p.write_text(f"{TOKEN_A}\x00"), "inside the token"),
        (lambda p: p.write_text(f"{TOKEN_A}é"), "inside the token"),
    ],
    ids=[
        "empty",
        "blank",
        "bom-only",
        "two-lines",
        "second-line-comment",
        "not-utf8",
        "utf16",
        "missing",
        "directory",
        "fifo",
        "huge",
        "inner-space",
        "nul",
        "non-ascii",
    ],
)
def test_a_bad_token_file_is_one_error_naming_the_file_never_the_content(
    tmp_path: Path, make: object, problem: str
) -> None:
    path = tmp_path / "token"
    make(path)  # type: ignore[operator]
    with pytest.raises(TokenError) as raised:
        TokenFile(path)
    message = str(raised.value)
    assert problem.format(p=path) in message
    assert str(path) in message
    assert "\n" not in message
    assert TOKEN_A not in message
    assert TOKEN_B not in message
    # No chain back to a UnicodeDecodeError (which holds the bytes) or an OSError.
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_a_path_through_a_file_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "file").write_text(TOKEN_A)
    path = tmp_path / "file" / "token"
    with pytest.raises(TokenError, match=f"cannot read token file {path}: Not a directory"):
        read_token_file(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    path.chmod(0)
    with pytest.raises(TokenError, match=f"cannot read token file {path}: Permission denied"):
        read_token_file(path)


def test_load_settings_names_token_file_problems_as_such(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN_A}\n{TOKEN_B}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings([f"--northflank.token-file={path}"], {"NF_API_TOKEN": "ignored"})
    assert str(raised.value) == f"--northflank.token-file: token file {path} has more than one line"


def test_load_settings_gives_a_file_token_that_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\ufeff" + TOKEN_A + "\n")
    settings = load_settings([f"--northflank.token-file={path}"], {})
    assert isinstance(settings.token, TokenFile)
    assert settings.token.get_secret_value() == TOKEN_A
    assert TOKEN_A not in repr(settings)


@pytest.mark.parametrize("variable", ["NF_API_TOKEN", "NORTHFLANK_API_TOKEN"])
def test_a_token_variable_that_cannot_be_a_token_is_refused(variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings([], {variable: f"{TOKEN_A}\n{TOKEN_B}"})
    assert str(raised.value) == f"{variable} has more than one line"
    with pytest.raises(ConfigError, match=f"^{variable} holds spaces"):
        load_settings([], {variable: f"{TOKEN_A} é"})
    settings = load_settings([], {variable: f"\ufeff {TOKEN_A}\n"})
    assert settings.token is not None
    assert settings.token.get_secret_value() == TOKEN_A


def test_check_token() -> None:
    assert check_token(f" {TOKEN_A} \n", "X") == TOKEN_A
    with pytest.raises(TokenError, match=r"^X is empty$"):
        check_token("", "X")


# -- the client: a 401 reads the file again at once ---------------------------------------------------------

PROJECTS = {"data": {"projects": [{"id": "p1", "name": "P1"}]}, "pagination": {"hasNextPage": False}}


def accepting(token: str, seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        sent = request.headers["authorization"].removeprefix("Bearer ")
        seen.append(sent)
        if sent != token:
            return httpx.Response(401, json={"error": {"message": "Unauthorized"}})
        return httpx.Response(200, json=PROJECTS)

    return httpx.MockTransport(handler)


async def test_a_401_reads_the_token_file_again_and_retries_with_the_new_token_at_once(
    tmp_path: Path, monotonic: Monotonic, logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    # An interval so long that only the 401 can make the client look at the file again.
    token = TokenFile(path, check_interval=3600, monotonic=monotonic)
    seen: list[str] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with NorthflankClient(
        base_url="https://api.example.test",
        token=token,
        transport=accepting(TOKEN_B, seen),
        clock=FixedClock(1_700_000_000),
        sleep=sleep,
    ) as client:
        with pytest.raises(AuthError):
            await client.list_projects()
        assert seen == [TOKEN_A]  # the same file: no retry
        write_atomically(path, TOKEN_B)
        projects = await client.list_projects()
    assert [p.id for p in projects] == ["p1"]
    assert seen == [TOKEN_A, TOKEN_A, TOKEN_B]
    assert sleeps == [0.0]


async def test_a_401_with_a_fixed_token_is_not_retried(logs: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    async with NorthflankClient(
        base_url="https://api.example.test",
        token=SecretStr(TOKEN_A),
        transport=accepting(TOKEN_B, seen),
        clock=FixedClock(1_700_000_000),
    ) as client:
        with pytest.raises(AuthError):
            await client.list_projects()
    assert seen == [TOKEN_A]


async def test_a_request_that_raced_a_rotation_is_retried_even_if_another_read_the_file(
    tmp_path: Path, monotonic: Monotonic
) -> None:
    """Concurrent requests: one 401 reads the file; another 401 with the old token still retries."""
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    token = TokenFile(path, check_interval=3600, monotonic=monotonic)
    seen: list[str] = []
    rotated = False

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal rotated
        sent = request.headers["authorization"].removeprefix("Bearer ")
        seen.append(sent)
        if not rotated:  # the file changes, and someone else reads it, while this request is out
            rotated = True
            write_atomically(path, TOKEN_B)
            token.reload()
        if sent != TOKEN_B:
            return httpx.Response(401, json={"error": {"message": "Unauthorized"}})
        return httpx.Response(200, json=PROJECTS)

    async def no_sleep(_: float) -> None:
        return None

    async with NorthflankClient(
        base_url="https://api.example.test",
        token=token,
        transport=httpx.MockTransport(handler),
        clock=FixedClock(1_700_000_000),
        sleep=no_sleep,
    ) as client:
        await client.list_projects()
    assert seen == [TOKEN_A, TOKEN_B]


# -- the web config middleware: SIGHUP swaps it ---------------------------------------------------------


async def test_the_middleware_serves_the_next_requests_by_the_new_config(tmp_path: Path) -> None:
    def config(password: str, frame: str) -> str:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
        headers = f"http_server_config: {{headers: {{X-Frame-Options: {frame}}}}}\n"
        return f"basic_auth_users: {{alice: '{hashed}'}}\n{headers}"

    async def app(scope: object, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    first = parse_web_config(config("old-pass", "deny"), source="web.yml", base_dir=tmp_path)
    middleware = WebSecurityMiddleware(app, first)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://t") as http:
        ok = await http.get("/", auth=("alice", "old-pass"))
        assert ok.status_code == 200
        assert ok.headers["x-frame-options"] == "deny"
        auth = middleware.auth

        middleware.use(
            parse_web_config(config("old-pass", "sameorigin"), source="web.yml", base_dir=tmp_path)
        )
        assert middleware.auth is not auth  # a new hash for the same password: checked again
        ok = await http.get("/", auth=("alice", "old-pass"))
        assert ok.headers["x-frame-options"] == "sameorigin"

        middleware.use(
            parse_web_config(config("new-pass", "sameorigin"), source="web.yml", base_dir=tmp_path)
        )
        assert (await http.get("/", auth=("alice", "old-pass"))).status_code == 401
        assert (await http.get("/", auth=("alice", "new-pass"))).status_code == 200

        same = middleware.config
        auth = middleware.auth
        middleware.use(same)
        assert middleware.auth is auth  # unchanged users keep the verified-password cache


# -- the command line: one line, never a traceback ----------------------------------------------------------


def test_an_unexpected_failure_loading_the_configuration_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import exporter.cli

    def broken(*_: object) -> None:
        raise RuntimeError(TOKEN_A)

    monkeypatch.setattr(exporter.cli, "load_settings", broken)
    assert exporter.cli.main([]) == 2
    err = capsys.readouterr().err
    assert err == "northflank-backup-exporter: error: cannot load the configuration (RuntimeError)\n"


@pytest.mark.parametrize(
    ("message", "shown"),
    [("disk on fire", ": disk on fire"), (f"saw {TOKEN_A.upper()} in a reply", "")],
)
def test_an_unexpected_failure_of_the_check_is_one_line_without_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], message: str, shown: str
) -> None:
    import exporter.cli

    async def broken(*_: object, **__: object) -> int:
        raise OSError(message)

    monkeypatch.setattr(exporter.cli, "check_config", broken)
    monkeypatch.setattr(exporter.cli, "configure_logging", lambda *_: None)  # leave pytest's logging be
    monkeypatch.setenv("NF_API_TOKEN", TOKEN_A)
    assert exporter.cli.main(["--config.check"]) == 1
    err = capsys.readouterr().err
    assert err == f"northflank-backup-exporter: error: configuration check failed: OSError{shown}\n"
