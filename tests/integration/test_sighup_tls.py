"""SIGHUP and TLS, over real sockets: a renewed certificate is served to new connections without a restart
(as Go exporters do); a pair that does not load leaves the one in use; what cannot change live is said."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.app import Exporter
from tests.pki import Pki, issue, make_pki
from tests.support import simulated_exporter

TOKEN = "nf-sighup-tls-token-9e1d"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def served(pki: Pki) -> AsyncIterator[tuple[Exporter, int]]:
    config = pki.directory / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    async with simulated_exporter("demo", token=TOKEN, web_config_file=config) as simulated:
        running = simulated.exporter
        yield running.exporter, running.exporter.bound_port


async def served_certificate(port: int, pki: Pki) -> bytes:
    """The DER certificate a new TLS connection to the exporter is shown."""
    context = ssl.create_default_context(cafile=pki.ca.path)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return der
    finally:
        writer.close()
        await writer.wait_closed()


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def install(pki: Pki, name: str) -> Path:
    """Issue a new server pair and rename it over server.crt / server.key (as cert-manager's Secret does)."""
    pair = issue(pki.ca, pki.directory, name, server=True, dns=("localhost",), ips=("127.0.0.1",))
    for source, target in ((pair.cert, pki.server.cert), (pair.key, pki.server.key)):
        scratch = target.with_name(target.name + ".new")
        shutil.copyfile(source, scratch)
        os.replace(scratch, target)
    return pair.cert


async def test_a_renewed_certificate_is_served_to_new_connections_after_sighup(
    served: tuple[Exporter, int], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    exporter, port = served
    original = der(pki.server.cert)
    assert await served_certificate(port, pki) == original

    renewed = install(pki, "renewed")
    assert await served_certificate(port, pki) == original  # read at start, and on SIGHUP only
    exporter.reload()
    assert await served_certificate(port, pki) == der(renewed)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_pair_that_does_not_load_keeps_the_certificate_in_use(
    served: tuple[Exporter, int], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    exporter, port = served
    original = der(pki.server.cert)
    other = issue(pki.ca, pki.directory, "other", server=True, ips=("127.0.0.1",))
    shutil.copyfile(other.key, pki.server.key)  # the key of another certificate
    exporter.reload()
    assert await served_certificate(port, pki) == original
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "the key does not belong to the certificate; keeping the web config in use" in errors[0]


async def test_tls_settings_beyond_the_pair_are_said_to_take_a_restart(
    served: tuple[Exporter, int], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    exporter, port = served
    renewed = install(pki, "renewed")
    config = pki.directory / "web.yml"
    config.write_text(config.read_text() + "  min_version: TLS13\n")
    exporter.reload()
    assert await served_certificate(port, pki) == der(renewed)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "take a restart; the new certificate and key are in use" in warnings[0]
