from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from channels.whatsapp.verify import sign, signature_matches, subscription_challenge
from tests.whatsapp.fixtures import FIXTURES, raw

# From tests/fixtures/whatsapp/signed/README.txt.
APP_SECRET = "fixture_app_secret_do_not_use"
SIGNATURE = "sha256=e34b899ea9ebd9f5771b21fc5bd201d5ba1cf64fa8bbfa03539825239342a01f"


def test_the_readme_documents_the_secret_and_signature_used_here():
    readme = (FIXTURES / "signed" / "README.txt").read_text()
    assert APP_SECRET in readme and SIGNATURE in readme


def test_the_signed_fixture_verifies_over_its_raw_bytes():
    body = raw("signed/text_body.raw")
    assert signature_matches(body, SIGNATURE, APP_SECRET)
    assert sign(body, APP_SECRET) == SIGNATURE


def test_the_same_json_re_serialised_does_not_verify():
    body = raw("signed/text_body.raw")
    reserialised = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
    assert reserialised != body
    assert not signature_matches(reserialised, SIGNATURE, APP_SECRET)


def test_a_missing_header_secret_or_prefix_never_verifies():
    body = raw("signed/text_body.raw")
    assert not signature_matches(body, None, APP_SECRET)
    assert not signature_matches(body, "", APP_SECRET)
    assert not signature_matches(body, SIGNATURE, None)
    assert not signature_matches(body, SIGNATURE.removeprefix("sha256="), APP_SECRET)
    assert not signature_matches(body, SIGNATURE, "another secret")


def test_an_uppercase_hex_signature_still_verifies():
    body = raw("signed/text_body.raw")
    assert signature_matches(body, "sha256=" + SIGNATURE[7:].upper(), APP_SECRET)


@given(st.text(max_size=100))
def test_any_header_text_is_answered_with_a_boolean(header):
    assert signature_matches(b"{}", header, APP_SECRET) in (True, False)


def test_the_subscription_handshake_echoes_the_challenge_only_for_our_token():
    ok = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "my-verify-token"}
    assert subscription_challenge(ok, "my-verify-token") == "1158201444"
    assert subscription_challenge({**ok, "hub.verify_token": "nope"}, "my-verify-token") is None
    assert subscription_challenge({**ok, "hub.mode": "unsubscribe"}, "my-verify-token") is None
    assert subscription_challenge(ok, None) is None
    assert subscription_challenge({**ok, "hub.verify_token": "ü"}, "my-verify-token") is None
