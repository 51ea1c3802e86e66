"""``cs-admin ca`` and ``broker-config``: the admin guide's first steps, without a central."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from provisioning import pki
from provisioning.cli import main
from provisioning.errors import EXIT_USAGE


def test_the_ca_signs_a_broker_certificate_for_the_names_kiosks_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, tls = tmp_path / "ca", tmp_path / "tls"
    assert main(["ca", "init", str(ca)]) == 0
    assert (ca / pki.CA_KEY).stat().st_mode & 0o777 == 0o600
    argv = ["ca", "server", str(ca), "--host", "broker.library.lan", "--host", "10.0.0.5"]
    assert main([*argv, "--out", str(tls)]) == 0

    cert = x509.load_pem_x509_certificate((tls / pki.SERVER_CERT).read_bytes())
    authority = x509.load_pem_x509_certificate((tls / pki.CA_CERT).read_bytes())
    public_key = authority.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(authority)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "broker.library.lan" in names.get_values_for_type(x509.DNSName)
    assert not (tls / pki.CA_KEY).exists()  # the CA key stays with the admin

    capsys.readouterr()
    assert main(["ca", "init", str(ca)]) == EXIT_USAGE  # never overwrite a CA
    assert "already exists" in capsys.readouterr().err


def test_broker_config_has_no_anonymous_listener_and_tls_for_kiosks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["broker-config", "--pid-file", "/run/mosquitto/mosquitto.pid"]) == 0
    conf = capsys.readouterr().out
    assert "allow_anonymous false" in conf
    assert "listener 8883 0.0.0.0" in conf
    assert "certfile /etc/mosquitto/communityshare/tls/server.pem" in conf
    assert "plugin_opt_config_file /etc/mosquitto/communityshare/dynamic-security.json" in conf
    assert "mosquitto_dynamic_security.so" in conf
    assert "password_file" not in conf  # accounts live in the plugin, changed live
    assert "listener 1883 127.0.0.1" in conf  # central on the broker's host, still with a password
    assert "use_username_as_clientid true" in conf


def test_a_kiosk_client_certificate_is_named_after_the_kiosk(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    assert main(["ca", "init", str(ca)]) == 0
    assert main(["ca", "client", str(ca), "KIOSK-A1", "--out", str(tmp_path / "k")]) == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "k" / "KIOSK-A1.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "KIOSK-A1"
