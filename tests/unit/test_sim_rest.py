"""The REST token endpoint: Kraken's API-Sign (reference §3.2) checked exactly, Kraken-style errors."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse

import aiohttp

from connector.kraken.sim import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig, Simulator, sign
from connector.kraken.sim.testing import SimClient, fetch_token, run

TOKEN_PATH = "/0/private/GetWebSocketsToken"


def test_sign_reproduces_krakens_published_vector() -> None:
    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    expected = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    assert sign(secret, "/0/private/AddOrder", 1616492376594, body) == expected


async def post(url: str, body: str, headers: dict[str, str]) -> dict:
    async with aiohttp.ClientSession() as s, s.post(url + TOKEN_PATH, data=body, headers=headers) as r:
        assert r.status == 200  # Kraken reports errors in the body
        return json.loads(await r.text())


def form_headers(nonce: int, body: str, key: str = DEFAULT_API_KEY, secret: str = DEFAULT_API_SECRET) -> dict:
    return {
        "API-Key": key,
        "API-Sign": sign(secret, TOKEN_PATH, nonce, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_token_issued_for_a_properly_signed_request() -> None:
    async def scenario() -> None:
        async with Simulator(SimConfig(rate=1.0)) as sim:
            reply = await fetch_token(sim.rest_url, nonce=1)
            assert reply["error"] == []
            assert isinstance(reply["result"]["token"], str) and len(reply["result"]["token"]) >= 20
            assert reply["result"]["expires"] == 900
            # JSON bodies are signed the same way (nonce read from the JSON).
            body = json.dumps({"nonce": 2})
            headers = {
                "API-Key": DEFAULT_API_KEY,
                "API-Sign": sign(DEFAULT_API_SECRET, TOKEN_PATH, 2, body),
                "Content-Type": "application/json",
            }
            assert (await post(sim.rest_url, body, headers))["error"] == []
            assert [r.ok for r in sim.rest_requests] == [True, True]

    run(scenario())


def test_bad_key_signature_and_nonce_are_refused() -> None:
    async def scenario() -> None:
        async with Simulator(SimConfig(rate=1.0)) as sim:
            url = sim.rest_url
            body = urllib.parse.urlencode({"nonce": 10})
            good = form_headers(10, body)
            no_key = {k: v for k, v in good.items() if k != "API-Key"}
            assert await post(url, body, no_key) == {"error": ["EAPI:Invalid key"]}
            assert await post(url, body, {**good, "API-Key": "other"}) == {"error": ["EAPI:Invalid key"]}
            assert await post(url, body, {**good, "API-Sign": "not base64!"}) == {
                "error": ["EAPI:Invalid signature"]
            }
            wrong_secret = base64.b64encode(hashlib.sha512(b"x").digest()).decode()
            assert await post(url, body, form_headers(10, body, secret=wrong_secret)) == {
                "error": ["EAPI:Invalid signature"]
            }
            tampered = urllib.parse.urlencode({"nonce": 11})  # body changed after signing
            assert await post(url, tampered, good) == {"error": ["EAPI:Invalid signature"]}
            assert await post(url, "", form_headers(0, "")) == {"error": ["EAPI:Invalid nonce"]}
            assert (await post(url, body, good))["error"] == []
            assert await post(url, body, good) == {"error": ["EAPI:Invalid nonce"]}  # replayed nonce
            later = urllib.parse.urlencode({"nonce": 12})
            assert (await post(url, later, form_headers(12, later)))["error"] == []
            # The secret never shows up in what the simulator records.
            assert DEFAULT_API_SECRET not in repr(sim.rest_requests) and DEFAULT_API_SECRET not in repr(
                sim.config
            )

    run(scenario())


def test_tokens_open_private_subscriptions_only_when_issued() -> None:
    async def scenario() -> None:
        async with Simulator(SimConfig(rate=1.0, api_key="k1", api_secret=DEFAULT_API_SECRET)) as sim:
            refused = await fetch_token(sim.rest_url)  # default key is not this simulator's key
            assert refused == {"error": ["EAPI:Invalid key"]}
            token = (await fetch_token(sim.rest_url, api_key="k1"))["result"]["token"]
            async with SimClient(sim.auth_ws_url) as c:
                (ok,) = await c.subscribe({"channel": "balances", "token": token})
                assert ok["success"] is True
                sim.tokens.revoke_all()
                (gone,) = await c.subscribe({"channel": "executions", "token": token})
                assert gone["success"] is False and gone["error"] == "ESession:Invalid session"

    run(scenario())
