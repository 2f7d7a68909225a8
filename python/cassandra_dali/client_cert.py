"""A client certificate for mutual TLS, signed by a launcher's CA (``server start --tls
--tls-client-auth``): made with keytool like the server's, then written as PEM files, the form
both the reader (``ssl_own_certificate``/``ssl_own_key``) and the Python driver take."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

CLIENT_CERT = "client.pem"
CLIENT_KEY = "client.key"
TRUSTSTORE = "truststore.p12"

Keytool = Callable[..., None]  # keytool(*args), the store password given through the environment
# keytool reads store passwords from this environment variable, never from argv (seen in `ps`).
PASSWORD_ENV = "CASSANDRA_DALI_KEYSTORE_PASSWORD"
PASS_ARGS = ("-storepass:env", PASSWORD_ENV)


def ensure_truststore(tls_dir: Path, ca_pem: Path, keytool: Keytool) -> Path:
    """A PKCS12 store holding only the CA's certificate: what the server checks clients with."""
    store = tls_dir / TRUSTSTORE
    if not store.is_file():
        keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
                "-keystore", str(store), "-storetype", "PKCS12", *PASS_ARGS)
        store.chmod(0o600)
    return store


def ensure_client_material(tls_dir: Path, ca_pem: Path, password: str,
                           keytool: Keytool) -> tuple[Path, Path]:
    """``(client.pem, client.key)`` in ``tls_dir``, signed by the CA there; reused if present.
    The key file is readable by the owner only."""
    cert, key = tls_dir / CLIENT_CERT, tls_dir / CLIENT_KEY
    if cert.is_file() and key.is_file():
        return cert, key
    store, csr, signed = tls_dir / "client.p12", tls_dir / "client.csr", tls_dir / "client.signed"
    for leftover in (store, csr, signed, cert, key):  # from a start that failed half-way
        leftover.unlink(missing_ok=True)
    try:
        return _make_client_material(tls_dir, ca_pem, password, keytool, store, csr, signed)
    finally:
        for temporary in (store, csr, signed):
            temporary.unlink(missing_ok=True)


def _make_client_material(tls_dir: Path, ca_pem: Path, password: str, keytool: Keytool,
                          store: Path, csr: Path, signed: Path) -> tuple[Path, Path]:
    cert, key = tls_dir / CLIENT_CERT, tls_dir / CLIENT_KEY
    keytool("-genkeypair", "-alias", "client", "-keyalg", "RSA", "-keysize", "2048",
            "-validity", "3650", "-dname", "CN=cassandra-dali client", "-keystore", str(store),
            "-storetype", "PKCS12", *PASS_ARGS, "-keypass:env", PASSWORD_ENV)
    keytool("-certreq", "-alias", "client", "-keystore", str(store), *PASS_ARGS,
            "-file", str(csr))
    keytool("-gencert", "-alias", "ca", "-keystore", str(tls_dir / "ca.p12"), *PASS_ARGS,
            "-infile", str(csr), "-outfile", str(signed), "-rfc", "-validity", "3650",
            "-ext", "ku:c=digitalSignature,keyEncipherment", "-ext", "eku=clientAuth")
    _write_private(key, _private_key_pem(store, password))
    cert.write_bytes(signed.read_bytes() + ca_pem.read_bytes())  # leaf, then its CA
    return cert, key


def _private_key_pem(pkcs12: Path, password: str) -> bytes:
    try:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            pkcs12 as pkcs12_format,
        )
    except ImportError as error:  # a dependency of the package; say so if it went missing
        raise RuntimeError(f"mutual TLS needs the Python package cryptography: {error}") from None
    key, _cert, _chain = pkcs12_format.load_key_and_certificates(
        pkcs12.read_bytes(), password.encode()
    )
    if key is None:
        raise RuntimeError(f"{pkcs12} holds no private key")
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    # Owner-only from its creation: no moment where another user could open it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
