"""The request flow: Slack events in, core transitions, effects out as Slack calls — one module per stage.

The only place that maps the dialog's effects (bot.request.transitions) to Slack: messages built by bot.slack.blocks, face
work in the engine's process pool, searches through bot.service, audit entries, the call-thread log. Decisions
stay in the core. Every Slack call tolerates failure, also beyond the client's retries (it is logged): the state
machine and the audit log are the record; a lost message never loses a request.

| stage | module | what |
|---|---|---|
| Slack calls, shared helpers | `effects` | post / update / ephemeral / react / upload, `post_essential` (queued when Slack is down) |
| intake | `intake` | `handle_upload` (a photo opens or offers a request), `shortcut_search`, `index_dispatch` |
| form | `form` | `open_form`, `submit_form` (the modal: three answers at once, inline errors) |
| dialog | `dialog` | `transition`, `apply` (effects -> Slack; starts every other stage), `follow` (what a stage hands back), `handle_reply`, `handle_edit`, `handle_action` |
| search | `searching` | `analyse` (download, faces), `search` (1:N search, result, contact sheet, call-thread log) |
| jobs | `jobs` | `tick` (timeouts, `watchdog`, outbox), `reconcile_audit`, `resume_all`, `purge`, `publish_head` |
| oversight | `oversight` | the leader's `check_alerts` (anomaly alerts) and `verify_chain` (the full chain check) |

Entry points (called by the listeners after they ack) and jobs are re-exported here. No stage calls the dialog
stage: a stage's work hands back what happens next (`effects.Next`: the dialog's transition, then a last step),
and `dialog.follow` carries it out, so the stages import each other one way only (dialog -> approving ->
examining; dialog -> searching -> examining).
"""
from bot.slack.flow import examining
from bot.slack.flow.dialog import apply, handle_action, handle_edit, handle_reply, transition
from bot.slack.flow.effects import post, post_essential, private_channel_problem, replay_spool
from bot.slack.flow.form import open_form, submit_form
from bot.slack.flow.intake import earlier_request_id, handle_upload, index_dispatch, shortcut_search
from bot.slack.flow.jobs import audit_gaps, publish_head, purge, reconcile_audit, resume_all, tick, watchdog
from bot.slack.flow.oversight import check_alerts, verify_chain

__all__ = [
    "apply",
    "audit_gaps",
    "check_alerts",
    "earlier_request_id",
    "examining",
    "handle_action",
    "handle_edit",
    "handle_reply",
    "handle_upload",
    "index_dispatch",
    "open_form",
    "post",
    "post_essential",
    "private_channel_problem",
    "publish_head",
    "purge",
    "reconcile_audit",
    "replay_spool",
    "resume_all",
    "shortcut_search",
    "submit_form",
    "tick",
    "transition",
    "verify_chain",
    "watchdog",
]
