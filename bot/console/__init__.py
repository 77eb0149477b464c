"""The read-only web console for command staff and auditors, served by the bot under /console (CONTRACTS ### 14):
Sign in with Slack, server-rendered pages (Jinja2) over the audit log, and the two writes oversight needs
(*Reviewed* on an alert, a sampled request's checklist). An adapter like bot/slack: the decisions it shows are
bot.oversight's."""
