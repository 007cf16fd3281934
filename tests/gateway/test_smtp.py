"""Outside dev mode the code travels only by email: a real SMTP conversation with a local aiosmtpd
server, nothing in the response, and a Secure session cookie."""

from __future__ import annotations

import asyncio
import re
from email import message_from_bytes

from aiosmtpd.controller import Controller

from shared import natsd
from tests.gateway.conftest import serve
from tests.alertkit import Inbox
from tests.helpers import stack_settings


async def test_otp_is_emailed_in_prod_and_never_shown(nats_server, data_dir, gw_sim, gateway_port):
    inbox = Inbox()
    port = natsd.free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        settings = stack_settings(nats_server, data_dir, gw_sim, gateway_port=gateway_port, env="prod",
                                  smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                                  smtp_from="kta@test.local")
        from gateway import users
        users.ensure_demo_user(settings)
        async with serve(settings) as gw, gw.client() as c:
            r = await c.post("/auth/send-otp", json={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
            assert r.status_code == 200 and "dev_otp" not in r.json()
            rcpts, raw = await asyncio.wait_for(inbox.messages.get(), 10)
            assert rcpts == ["demo@kta.local"]
            mail = message_from_bytes(raw)
            code = re.search(r"\b(\d{6})\b", mail.get_payload(decode=True).decode()).group(1)
            assert code not in r.text
            r = await c.post("/auth/verify-otp", json={"zerodha_id": "DEMO01", "otp": code})
            assert r.status_code == 200
            assert "Secure" in r.headers["set-cookie"]
            token = re.search(r"kta_session=([^;]+)", r.headers["set-cookie"]).group(1)
            async with gw.client(cookies={"kta_session": token}) as browser:
                assert (await browser.get("/auth/csrf")).json()["user_id"] == "DEMO01"
            form = {"zerodha_id": "DEMO01", "email": "demo@kta.local"}
            r = await c.post("/auth/send-otp", data=form)
            assert r.status_code == 200 and 'action="/auth/verify-otp"' in r.text and "dev-otp" not in r.text
            await asyncio.wait_for(inbox.messages.get(), 10)
            assert (await c.post("/auth/send-otp", data=form)).status_code == 429  # resend throttled
            assert "dev-otp" not in (await c.post("/auth/send-otp", data={"zerodha_id": "DEMO02",
                                                                          "email": "x@kta.local"})).text
    finally:
        smtp.stop()
