"""``twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com``: SMS through a Twilio-compatible HTTP API.

``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with the form fields ``To``, ``From``,
``Body`` and HTTP basic auth; the answer's ``sid`` is the provider id. The base URL is
``https://{host}`` unless ``TIDINGS_SMS_API_BASE_URL`` names another (a local fake, a compatible
provider). One ``httpx.Client`` (one pool of keep-alive connections) serves a whole batch.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import httpx

from tidings.delivery.transports.base import (
    Deferred,
    Delivered,
    Outcome,
    Outgoing,
    Rejected,
    Sms,
    TransportConfigError,
    short,
)

TIMEOUT_SECONDS = 15.0


class TwilioMessenger:
    def __init__(self, url: str, base_url: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "twilio" or not parts.username or not parts.password:
            raise TransportConfigError("expected twilio://ACCOUNT_SID:AUTH_TOKEN@host")
        self.account_sid = unquote(parts.username)
        base = (base_url or f"https://{parts.hostname or 'api.twilio.com'}").rstrip("/")
        self.endpoint = f"{base}/2010-04-01/Accounts/{quote(self.account_sid)}/Messages.json"
        self._auth = (self.account_sid, unquote(parts.password))
        self._client: httpx.Client | None = None
        self._broken: str | None = None

    def push(self, message: Outgoing) -> Outcome:
        if not isinstance(message, Sms):
            return Rejected("the Twilio transport carries SMS only")
        if message.sender is None:
            # The send refuses this while the SMS API is configured; the server's settings may
            # have changed since.
            return Rejected("no SMS sender: give 'from' in the send or set TIDINGS_SMS_FROM")
        if self._broken is not None:
            return Deferred(self._broken)  # unreachable earlier in this batch: do not wait again
        if self._client is None:
            self._client = httpx.Client(auth=self._auth, timeout=TIMEOUT_SECONDS)
        form = {"To": message.to, "From": message.sender, "Body": message.body}
        try:
            response = self._client.post(self.endpoint, data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self._broken = short(f"SMS API unreachable: {type(exc).__name__}: {exc}")
            return Deferred(self._broken)
        except httpx.HTTPError as exc:
            return Deferred(short(f"SMS API request failed: {type(exc).__name__}: {exc}"))
        return _outcome(response)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


# Twilio's error for a recipient who replied STOP: "Attempt to send to unsubscribed recipient".
OPTED_OUT = 21610


def _outcome(response: httpx.Response) -> Outcome:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if 200 <= status < 300:
        # Accepted, whatever the body says: retrying an answer without a sid sent the SMS again.
        sid = body.get("sid")
        return Delivered(provider_id=sid if isinstance(sid, str) else "")
    detail = body.get("message") or response.text[:200] or response.reason_phrase
    reason = short(f"SMS API {status}: {detail}")
    if body.get("code") == OPTED_OUT:
        return Rejected(reason, bounce=True)  # the number will refuse every later SMS too
    if status in (401, 403) or status == 429 or status >= 500:
        # 401/403: the account's credentials or permissions, a setup problem to fix, not a
        # property of the message; retried with backoff like SMTP's 535, not failed at once.
        return Deferred(reason)
    return Rejected(reason)
