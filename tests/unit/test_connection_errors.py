"""Connection errors name the host and the cause (issue 10, section 4): a refused port, a mistyped host, a
certificate not trusted, a server that is not TLS and one that never answers each read differently, over
real sockets on 127.0.0.1; the metric reason stays ``connection`` or ``timeout``. ``--config.check``
says it on stderr, exit 1."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from exporter.cli import main
from exporter.clock import FixedClock
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import NorthflankError, RequestTimeoutError, TransportError
from tests.pki import make_pki
from tests.support import free_port

TOKEN = "nf-connection-errors-token-7c1d"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def failure(base_url: str, deadline: float = 5.0) -> NorthflankError:
    client = NorthflankClient(
        base_url=base_url, token=SecretStr(TOKEN), clock=FixedClock(1.7e9), timeout=deadline, max_retries=0
    )
    async with client:
        with pytest.raises(NorthflankError) as caught:
            await client.list_projects()
    error = caught.value
    assert TOKEN not in str(error)
    return error


async def test_a_refused_port_says_host_port_and_connection_refused() -> None:
    port = free_port()
    error = await failure(f"http://127.0.0.1:{port}")
    assert isinstance(error, TransportError)
    assert error.reason == "connection"
    assert str(error) == f"/v1/projects: cannot connect to 127.0.0.1:{port}: connection refused"


async def test_a_host_that_does_not_resolve_says_name_resolution_failed() -> None:
    # .invalid never resolves (RFC 6761); offline, the resolver fails too, as a temporary failure.
    error = await failure("https://api.nortflank.invalid")
    assert error.reason == "connection"
    assert str(error).startswith("/v1/projects: name resolution failed for api.nortflank.invalid")


async def test_a_server_that_does_not_speak_tls_says_tls_handshake_failed() -> None:
    async def plain(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with tcp_server(plain) as port:
        error = await failure(f"https://127.0.0.1:{port}")
    assert error.reason == "connection"
    assert str(error).startswith(f"/v1/projects: TLS handshake with 127.0.0.1:{port} failed")


async def test_a_certificate_not_trusted_says_so(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server.cert, pki.server.key)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with tcp_server(silent, tls=context) as port:
        error = await failure(f"https://127.0.0.1:{port}")
    assert error.reason == "connection"
    assert str(error).startswith(f"/v1/projects: TLS certificate of 127.0.0.1:{port} not trusted: ")
    assert "certificate" in str(error).split("not trusted: ", 1)[1]


async def test_a_server_that_never_answers_is_a_timeout_naming_the_host() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    async with tcp_server(mute) as port:
        error = await failure(f"http://127.0.0.1:{port}", deadline=0.3)
    assert isinstance(error, RequestTimeoutError)
    assert error.reason == "timeout"
    assert str(error) == f"/v1/projects: no complete response from 127.0.0.1:{port} within 0.3s"


def test_config_check_says_a_connection_failure_on_stderr_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("NF_API_TOKEN", TOKEN)
    monkeypatch.setenv("NF_API_HOST", f"http://127.0.0.1:{port}")
    assert main(["--config.check"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"configuration check failed: /v1/projects: cannot connect to 127.0.0.1:{port}: connection refused "
        "(connection)"
    ]


def test_a_mocked_connect_error_still_names_the_host() -> None:
    """Without an OS cause (a transport raising ConnectError by itself), the host is still said."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {TOKEN}", request=request)

    async def read() -> NorthflankError:
        client = NorthflankClient(
            base_url="https://api.example.test",
            token=SecretStr(TOKEN),
            clock=FixedClock(1.7e9),
            transport=httpx.MockTransport(refuse),
            max_retries=0,
        )
        async with client:
            with pytest.raises(NorthflankError) as caught:
                await client.list_projects()
        return caught.value

    error = asyncio.run(read())
    assert str(error) == "/v1/projects: cannot connect to api.example.test:443 (ConnectError)"
