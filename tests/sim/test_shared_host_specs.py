"""On a host several products share, each request is checked against its product's spec."""

from __future__ import annotations

from sidestep.sim.testing import running_simulator

MESSAGES = "https://graph.facebook.com/v23.0/106540352242922/messages"


async def test_whatsapp_messages_on_graph_facebook_com_are_checked_against_whatsapps_spec() -> None:
    async with running_simulator(seed=1) as sim:
        await sim.load_specs()
        async with sim.client(timeout=30) as client:
            headers = {"Authorization": "Bearer not-a-granted-token"}
            message = {"messaging_product": "whatsapp", "recipient_type": "individual",
                       "type": "text", "text": {"body": "We are on Telegram while WA is down"}}
            malformed = await client.post(
                MESSAGES, headers=headers, json={**message, "to": 4915112345678})
            well_formed = await client.post(
                MESSAGES, headers=headers, json={**message, "to": "4915112345678"})
    assert malformed.status_code == 400
    error = malformed.json()["error"]
    assert error["code"] == 100 and "body['to']" in error["message"]  # the spec, in Graph's words
    # The same message with the number as text passes the spec and reaches the route, which
    # refuses it for its missing token: proof the check ran and is not refusing everything.
    assert well_formed.json()["error"]["code"] == 190
