"""The dynamic security seed: the stored hashes carried over as they are, deny by default."""

from __future__ import annotations

import base64
import hashlib

import pytest

from broker import auth, topics
from broker.errors import ContractError


def test_the_seed_carries_each_password_hash_and_denies_whatever_no_role_grants() -> None:
    password = auth.new_password()
    kiosk = auth.Account("KIOSK-A1", auth.Role.KIOSK, auth.hash_password(password), "SHELF-A")
    central = auth.Account("CENTRAL-1", auth.Role.CENTRAL, auth.hash_password("c"))
    seed = auth.dynsec_config([kiosk, central])

    assert seed["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    (entry,) = [c for c in seed["clients"] if c["username"] == "KIOSK-A1"]
    # The plugin checks PBKDF2-SHA512(password, salt, iterations) against "password".
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(entry["salt"]), entry["iterations"]
    )
    assert base64.b64encode(digest).decode() == entry["password"]
    assert entry["roles"] == [{"rolename": "cs-kiosk-KIOSK-A1"}]

    roles = {r["rolename"]: r["acls"] for r in seed["roles"]}
    subscribes = {a["topic"] for a in roles["cs-kiosk-KIOSK-A1"] if a["acltype"].startswith("sub")}
    assert subscribes == {
        topics.verdict("KIOSK-A1"),
        topics.config("KIOSK-A1"),
        topics.command("KIOSK-A1"),
        topics.shelf_availability("SHELF-A"),
    }
    sends = {a["topic"] for a in roles["cs-kiosk-KIOSK-A1"] if a["acltype"] == "publishClientSend"}
    assert sends == {topics.scan("KIOSK-A1"), topics.status("KIOSK-A1")}
    assert all(a["allow"] for acls in roles.values() for a in acls)


@pytest.mark.parametrize("bad", ["", "plain", "$6$101$c2FsdA==$ZGlnZXN0", "$7$101$c2FsdA==$x"])
def test_a_hash_the_plugin_cannot_use_is_refused_with_a_reason(bad: str) -> None:
    account = auth.Account("KIOSK-A1", auth.Role.KIOSK, bad, "SHELF-A")
    with pytest.raises(ContractError) as refused:
        auth.dynsec_config([account])
    assert refused.value.reason == "bad_account"
