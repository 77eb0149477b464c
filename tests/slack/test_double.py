"""The Slack double behaves like Slack where the bot depends on it, driven by a real slack_sdk client;
and the harness (double + signed POSTs to a Bolt server) works end to end."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.client import make_web_client

from .double import BOT_USER_ID, DISCONNECT, TOKEN, SlackDouble
from .signing import SIGNING_SECRET, event_body, post

META = {"event_type": "fr_search", "event_payload": {"request_id": "R1", "call_number": "26-012345"}}


@pytest.fixture
async def slack():
    async with SlackDouble() as double:
        double.add_channel("C1", "case-26-012345")
        double.add_channel("CDISPATCH", "dispatch", is_private=True)
        double.add_user("U1", "officer.one", display_name="Ofc. One")
        yield double


@pytest.fixture
def client(slack) -> AsyncWebClient:
    return make_web_client(TOKEN, slack.base_url)


async def test_post_update_ephemeral_and_permalink(slack, client):
    upload = slack.add_message("C1", "photo", user="U1")
    posted = await client.chat_postMessage(channel="C1", thread_ts=upload["ts"], text="Call number?", metadata=META)
    await client.chat_update(channel="C1", ts=posted["ts"], text="Searching… done", metadata=META)
    eph = await client.chat_postEphemeral(channel="C1", user="U1", text="Only the requester can answer.")
    link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])

    [msg] = slack.messages("C1", thread_ts=upload["ts"])
    assert (msg["ts"], msg["text"], msg["thread_ts"]) == (posted["ts"], "Searching… done", upload["ts"])
    assert msg["metadata"] == META and msg["user"] == BOT_USER_ID
    assert slack.ephemerals("C1", "U1")[0]["ts"] == eph["message_ts"]
    assert link["permalink"].startswith(f"https://example.slack.com/archives/C1/p{posted['ts'].replace('.', '')}")
    assert f"thread_ts={upload['ts']}" in link["permalink"]
    assert slack.posts_without_metadata() == []


async def test_update_of_a_message_that_is_not_the_bots_is_refused(slack, client):
    theirs = slack.add_message("C1", "hello", user="U1")
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts=theirs["ts"], text="edited")
    assert err.value.response["error"] == "cant_update_message"


@pytest.mark.parametrize(
    "metadata",
    [
        {"event_type": "fr-search", "event_payload": {}},
        {"event_type": "fr search", "event_payload": {}},
        {"event_type": "fr_search", "event_payload": ["not", "an", "object"]},
        {"event_payload": {}},
    ],
)
async def test_invalid_metadata_is_rejected_and_nothing_is_posted(slack, client, metadata):
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="x", metadata=metadata)
    assert err.value.response["error"] == "invalid_metadata_format"
    assert slack.messages("C1") == []


async def test_posts_without_metadata_are_reported(slack, client):
    await client.chat_postMessage(channel="C1", text="no metadata")
    assert [c.params["text"] for c in slack.posts_without_metadata()] == ["no metadata"]


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "divider"}] * 51,
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "y" * 76},
                                            "action_id": "a"}]}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}],
        [{"type": "section"}],
    ],
    ids=["51 blocks", "section text 3001", "button text 76", "empty text", "section without text"],
)
async def test_block_kit_limits_are_enforced(slack, client, blocks):
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="x", blocks=blocks, metadata=META)
    assert err.value.response["error"] == "invalid_blocks"
    assert slack.messages("C1") == []


async def test_block_kit_built_with_slack_sdk_models_at_the_limits_is_accepted(slack, client):
    blocks = [SectionBlock(text=MarkdownTextObject(text="c" * 3000))] * 47 + [
        ContextBlock(elements=[MarkdownTextObject(text="caveat")]),
        ActionsBlock(elements=[ButtonElement(text="b" * 75, action_id="purpose_1", value="investigation"),
                               ButtonElement(text="Threat", action_id="purpose_2", value="threat", style="danger")]),
        SectionBlock(fields=[MarkdownTextObject(text=f"f{i}") for i in range(10)]),
    ]
    await client.chat_postMessage(channel="C1", text="fallback", blocks=blocks, metadata=META)
    assert len(slack.messages("C1")[0]["blocks"]) == 50


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_messages_need_text_and_a_known_channel(slack, client):
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", metadata=META)
    assert err.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="CNOPE", text="x", metadata=META)
    assert err.value.response["error"] == "channel_not_found"


async def test_files_upload_v2_round_trip_lands_in_the_thread(slack, client):
    upload = slack.add_message("C1", "photo", user="U1")
    sheet = b"\x89PNG\r\n\x1a\n" + b"contact-sheet" * 100
    resp = await client.files_upload_v2(channel="C1", thread_ts=upload["ts"], file=sheet,
                                        filename="contact-sheet.png", title="Contact sheet",
                                        initial_comment="Probe and candidates")
    [up] = slack.uploads("C1", thread_ts=upload["ts"])
    assert (up.data, up.filename, up.title, up.initial_comment) == (
        sheet, "contact-sheet.png", "Contact sheet", "Probe and candidates")
    assert resp["file"]["id"] == up.id
    assert [c.method for c in slack.call_log()] == [
        "files.getUploadURLExternal", "files.upload", "files.completeUploadExternal"]
    # The share shows up as a bot message carrying the file in the thread, and files.info knows it.
    [carrier] = slack.messages("C1", thread_ts=upload["ts"])
    assert carrier["files"][0]["id"] == up.id and carrier["text"] == "Probe and candidates"
    info = await client.files_info(file=up.id)
    assert info["file"]["mimetype"] == "image/png"


async def test_wrong_or_missing_token_is_refused(slack):
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url).chat_postMessage(channel="C1", text="x")
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(base_url=slack.base_url).auth_test()
    assert err.value.response["error"] == "not_authed"
    assert slack.messages() == []


async def test_auth_test_names_the_bot(client):
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"]) == ("UBOT", "BBOT")
    assert auth["team_id"] and auth["url"]


async def test_rate_limit_is_retried_after_retry_after(slack, client):
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    resp = await client.chat_postMessage(channel="C1", text="x", metadata=META)
    assert [c.status for c in slack.call_log("chat.postMessage")] == [429, 200]
    assert [m["ts"] for m in slack.messages("C1")] == [resp["ts"]]


async def test_without_retry_handlers_the_429_surfaces(slack):
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    bare = AsyncWebClient(token=TOKEN, base_url=slack.base_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        await bare.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "0"
    assert slack.messages() == []


async def test_server_error_is_retried(slack, client):
    slack.fail_next("chat.postMessage", status=500)
    await client.chat_postMessage(channel="C1", text="x", metadata=META)
    assert [c.status for c in slack.call_log("chat.postMessage")] == [500, 200]
    assert len(slack.messages("C1")) == 1


async def test_dropped_connection_is_retried(slack, client):
    slack.fail_next("chat.postMessage", status=DISCONNECT)
    await client.chat_postMessage(channel="C1", text="x", metadata=META)
    assert [c.status for c in slack.call_log("chat.postMessage")] == [DISCONNECT, 200]


async def test_retries_give_up_and_raise(slack, client):
    slack.fail_next("chat.postMessage", status=429, times=10, retry_after=0)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C1", text="x", metadata=META)
    assert len(slack.call_log("chat.postMessage")) == 3  # one try and two retries
    assert slack.messages() == []


async def test_channel_user_and_usergroup_lookups(slack, client):
    slack.add_channel("CEXT", "case-shared", is_ext_shared=True)
    slack.add_user("UGUEST", "guest", restricted=True)
    slack.add_user("USINGLE", "single", ultra=True)
    slack.add_usergroup("S1", ["U1", "U2"])

    assert (await client.conversations_info(channel="CEXT"))["channel"]["is_ext_shared"] is True
    dispatch = (await client.conversations_info(channel="CDISPATCH"))["channel"]
    assert (dispatch["name"], dispatch["is_private"]) == ("dispatch", True)
    one = (await client.users_info(user="U1"))["user"]
    assert (one["profile"]["display_name"], one["is_restricted"], one["is_bot"]) == ("Ofc. One", False, False)
    assert (await client.users_info(user="UGUEST"))["user"]["is_restricted"] is True
    single = (await client.users_info(user="USINGLE"))["user"]
    assert single["is_restricted"] and single["is_ultra_restricted"]
    assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
    for call, error in ((client.conversations_info(channel="CNOPE"), "channel_not_found"),
                        (client.users_info(user="UNOPE"), "user_not_found"),
                        (client.usergroups_users_list(usergroup="SNOPE"), "no_such_subteam")):
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response["error"] == error


async def test_history_pages_newest_first_and_replies_hold_the_thread(slack, client):
    cad = slack.add_history("CDISPATCH", [
        {"text": "Call 26-000001 burglary", "bot_id": "BCAD", "ts": "1700000000.000100"},
        {"text": "Call 26-000002 robbery", "bot_id": "BCAD", "ts": "1700000100.000100"},
        {"text": "Call 26-000003 assault", "user": "U1", "ts": "1700000200.000100"},
    ])
    await client.chat_postMessage(channel="CDISPATCH", thread_ts=cad[1]["ts"], text="log entry", metadata=META)

    first = await client.conversations_history(channel="CDISPATCH", limit=2)
    assert [m["text"] for m in first["messages"]] == ["Call 26-000003 assault", "Call 26-000002 robbery"]
    assert first["messages"][1]["reply_count"] == 1
    rest = await client.conversations_history(channel="CDISPATCH", limit=2,
                                              cursor=first["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["Call 26-000001 burglary"] and not rest["has_more"]
    older = await client.conversations_history(channel="CDISPATCH", oldest="1700000100.000100")
    assert [m["text"] for m in older["messages"]] == ["Call 26-000003 assault"]

    thread = await client.conversations_replies(channel="CDISPATCH", ts=cad[1]["ts"])
    assert [m["text"] for m in thread["messages"]] == ["Call 26-000002 robbery", "log entry"]


async def test_reactions_add_and_remove(slack, client):
    upload = slack.add_message("C1", "photo", user="U1")
    await client.reactions_add(channel="C1", timestamp=upload["ts"], name="mag")
    assert slack.reactions("C1", upload["ts"]) == {"mag": [BOT_USER_ID]}
    with pytest.raises(SlackApiError) as err:
        await client.reactions_add(channel="C1", timestamp=upload["ts"], name="mag")
    assert err.value.response["error"] == "already_reacted"
    await client.reactions_remove(channel="C1", timestamp=upload["ts"], name="mag")
    assert slack.reactions("C1", upload["ts"]) == {}


async def test_missing_scope_is_reported_like_slack(client):
    async with SlackDouble(scopes=["channels:read"]) as limited:
        limited.add_channel("C1", "case-1")
        limited_client = make_web_client(TOKEN, limited.base_url)
        assert (await limited_client.conversations_info(channel="C1"))["ok"]
        with pytest.raises(SlackApiError) as err:
            await limited_client.chat_postMessage(channel="C1", text="x", metadata=META)
        assert (err.value.response["error"], err.value.response["needed"]) == ("missing_scope", "chat:write")


async def test_wait_for_waits_for_background_work_and_reports_what_it_saw(slack, client):
    async def later():
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="first", metadata=META)
        await client.chat_postMessage(channel="C1", text="second", metadata=META)

    task = asyncio.create_task(later())
    call = await slack.wait_for(lambda c: c.method == "chat.postMessage" and c.params["text"] == "second")
    assert call.ok
    await task
    assert (await slack.wait_for("chat.postMessage", count=2, ok=True)).params["text"] == "second"
    with pytest.raises(AssertionError, match="chat.postMessage"):
        await slack.wait_for("chat.update", timeout=0.1)


# --- the harness: signed events POSTed to a Bolt server that calls the double -----------------------------


@pytest.fixture
async def bolt_server(slack):
    app = AsyncApp(client=make_web_client(TOKEN, slack.base_url), signing_secret=SIGNING_SECRET)

    @app.event("message")
    async def echo(event, client):
        if event.get("bot_id"):
            return
        await client.chat_postMessage(channel=event["channel"], thread_ts=event["ts"],
                                      text=f"got: {event['text']}", metadata=META)

    runner = web.AppRunner(app.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    await runner.cleanup()


async def test_signed_event_reaches_bolt_and_its_reply_reaches_the_double(slack, bolt_server):
    event = slack.add_message("C1", "hello bot", user="U1")
    async with aiohttp.ClientSession() as session:
        reply = await post(session, bolt_server, event_body(event))
        assert reply.status == 200
        call = await slack.wait_for("chat.postMessage", ok=True)
        assert (call.params["text"], call.params["thread_ts"]) == ("got: hello bot", event["ts"])

        # A wrong secret or a stale timestamp is refused by Bolt before any listener runs.
        assert (await post(session, bolt_server, event_body(event), "wrong-secret")).status == 401
        stale = await post(session, bolt_server, event_body(event), timestamp=int(time.time()) - 600)
        assert stale.status == 401
    await asyncio.sleep(0)  # let any (wrongly) started listener get as far as its call
    assert len(slack.call_log("chat.postMessage")) == 1


# --- Sign in with Slack (OpenID Connect) ---------------------------------------------------------------------

OIDC_ID, OIDC_SECRET, REDIRECT = "111.222", "the-app-secret", "https://console.example/console/auth/callback"


def _authorize_query(**changes: str) -> dict[str, str]:
    return {"response_type": "code", "scope": "openid profile", "client_id": OIDC_ID, "redirect_uri": REDIRECT,
            "state": "s-123", "nonce": "n-456", "team": "T0TEST", **changes}


async def _allow(slack, http: aiohttp.ClientSession, decision: str = "allow", **changes: str) -> dict[str, str]:
    """The consent page shown, then its form sent with `decision`: the query Slack sends the browser back with."""
    from urllib.parse import parse_qsl, urlsplit

    url = f"{slack.url}/openid/connect/authorize"
    async with http.get(url, params=_authorize_query(**changes)) as page:
        assert page.status == 200 and 'name="decision" value="allow"' in await page.text()
    async with http.post(url, data={**_authorize_query(**changes), "decision": decision},
                         allow_redirects=False) as answer:
        assert answer.status == 302
        location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


async def test_sign_in_with_slack_round_trip_gives_the_signed_in_person_once(slack):
    import base64
    import json

    slack.register_openid_app(OIDC_ID, OIDC_SECRET, [REDIRECT])
    slack.sign_in_as("U1")
    async with aiohttp.ClientSession() as http:
        back = await _allow(slack, http)
    assert back["state"] == "s-123" and back["code"]
    oidc = AsyncWebClient(base_url=slack.base_url)
    token = await oidc.openid_connect_token(client_id=OIDC_ID, client_secret=OIDC_SECRET, code=back["code"],
                                            redirect_uri=REDIRECT)
    assert token["access_token"].startswith("xoxp-") and token["token_type"] == "Bearer"
    _header, payload, signature = token["id_token"].split(".")
    assert signature  # JWT-shaped: three base64url parts
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["sub"], claims["aud"], claims["nonce"], claims["https://slack.com/team_id"]) == (
        "U1", OIDC_ID, "n-456", "T0TEST")
    assert claims["iss"] == slack.url and claims["https://slack.com/user_id"] == "U1"
    who = await AsyncWebClient(token=token["access_token"], base_url=slack.base_url).openid_connect_userInfo()
    assert (who["sub"], who["https://slack.com/team_id"], who["name"]) == ("U1", "T0TEST", "Officer One")
    # The code works once; the call log has each step (the bot token was never needed).
    with pytest.raises(SlackApiError) as err:
        await oidc.openid_connect_token(client_id=OIDC_ID, client_secret=OIDC_SECRET, code=back["code"],
                                        redirect_uri=REDIRECT)
    assert err.value.response["error"] == "invalid_code"
    assert [c.method for c in slack.call_log()] == ["openid.authorize", "openid.authorize", "openid.connect.token",
                                                    "openid.connect.userInfo", "openid.connect.token"]
    assert slack.call_log("openid.connect.userInfo")[0].token == token["access_token"]


async def test_the_token_endpoint_checks_the_secret_and_the_redirect_url_and_userinfo_the_token(slack):
    slack.register_openid_app(OIDC_ID, OIDC_SECRET, [REDIRECT])
    slack.sign_in_as("U1")
    oidc = AsyncWebClient(base_url=slack.base_url)
    async with aiohttp.ClientSession() as http:
        first, second = await _allow(slack, http), await _allow(slack, http)
    for kwargs, error in (({"client_secret": "wrong"}, "bad_client_secret"),
                          ({"client_id": "999.999"}, "invalid_client_id"),
                          ({"code": first["code"], "redirect_uri": REDIRECT + "x"}, "bad_redirect_uri"),
                          ({"code": first["code"]}, "invalid_code")):  # spent by the wrong redirect URL above
        call = {"client_id": OIDC_ID, "client_secret": OIDC_SECRET, "code": second["code"], "redirect_uri": REDIRECT,
                **kwargs}
        with pytest.raises(SlackApiError) as err:
            await oidc.openid_connect_token(**call)
        assert err.value.response["error"] == error
    for token, error in ((None, "not_authed"), ("xoxp-1-never-issued", "invalid_auth"), (TOKEN, "invalid_auth")):
        with pytest.raises(SlackApiError) as err:
            await AsyncWebClient(token=token, base_url=slack.base_url).openid_connect_userInfo()
        assert err.value.response["error"] == error


async def test_the_authorize_page_cancels_refuses_strangers_and_asks_to_sign_in(slack):
    slack.register_openid_app(OIDC_ID, OIDC_SECRET, [REDIRECT])
    async with aiohttp.ClientSession() as http:
        url = f"{slack.url}/openid/connect/authorize"
        async with http.get(url, params=_authorize_query()) as page:  # nobody signed in to Slack in this browser
            assert "Sign in to example" in await page.text()
        slack.sign_in_as("U1")
        assert await _allow(slack, http, decision="cancel") == {"error": "access_denied", "state": "s-123"}
        for changes in ({"redirect_uri": "https://evil.example/cb"}, {"client_id": "999.999"}, {"scope": "profile"}):
            async with http.get(url, params=_authorize_query(**changes), allow_redirects=False) as page:
                assert page.status == 200 and "Location" not in page.headers
                assert "Something went wrong" in await page.text()
    assert [c.error for c in slack.call_log("openid.authorize")] == [
        "not_signed_in", None, "access_denied", "bad_redirect_uri", "invalid_client_id", "invalid_scope"]
