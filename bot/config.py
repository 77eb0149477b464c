"""Settings: config/settings.toml (or $BOT_CONFIG) plus the environment.

Secrets (tokens, signing secret, audit key) are read from the environment only and never stored here
beyond the process, never logged.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "settings.toml"
MAX_CANDIDATES_CAP = 20
MIN_AUDIT_RETENTION_DAYS = 365


class ConfigError(Exception):
    """A setting is missing or invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class SlackSettings:
    case_channel_prefix: str = "case-"
    case_channels: tuple[str, ...] = ()
    dispatch_channel: str = ""
    requesters: tuple[str, ...] = ()
    requester_groups: tuple[str, ...] = ()
    command_staff: tuple[str, ...] = ()
    command_staff_groups: tuple[str, ...] = ()
    gallery_admins: tuple[str, ...] = ()
    gallery_admin_groups: tuple[str, ...] = ()
    dialog_timeout_minutes: int = 30
    require_known_call: bool = False
    file_hosts: tuple[str, ...] = ("files.slack.com",)
    call_log_detail: str = "full"
    max_calls_per_message: int = 20
    call_index_days: int = 90
    recent_call_hours: int = 24
    cad_bot_ids: tuple[str, ...] = ()
    dispatchers: tuple[str, ...] = ()
    dispatcher_groups: tuple[str, ...] = ()

    @property
    def dispatch_sources_listed(self) -> bool:
        """Whether only listed CAD bots and dispatchers may open or take over a call thread."""
        return bool(self.cad_bot_ids or self.dispatchers or self.dispatcher_groups)


@dataclass(frozen=True)
class PolicySettings:
    call_number_pattern: str = r"^\d{2}-\d{6}$"
    justification_min_chars: int = 40


@dataclass(frozen=True)
class SearchSettings:
    threshold: float = 0.55  # dlib-resnet's ceiling: the key from before there were several models
    max_candidates: int = 5
    target_fpir: float = 0.01
    # [search.thresholds]: the hard distance ceiling per model id, in that model's distance (wins over `threshold`).
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def threshold_for(self, model_id: str) -> float:
        """The hard ceiling of a search with `model_id`'s templates: [search.thresholds], else for dlib-resnet
        the old [search] threshold, else the model's default (THRESHOLDS)."""
        if model_id in self.thresholds:
            return float(self.thresholds[model_id])
        if model_id == "dlib-resnet":
            return self.threshold
        return THRESHOLDS[model_id][0]


@dataclass(frozen=True)
class ImageSettings:
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_face_px: int = 60
    detect_max_side: int = 1024
    max_aspect_ratio: float = 8.0  # longer side / shorter side; past it refused before decoding


# The face models bot.faces.models builds (its IDS; a test keeps the two equal: importing it here would load
# dlib for every settings read).
FACE_MODELS = ("sface", "dlib-resnet")
# Per model, in its own distance: (default hard ceiling, the highest a setting may raise it to). dlib-resnet:
# face_recognition's own tolerance 0.6 is the limit. sface (1 - cosine): the limit is OpenCV Zoo's match
# threshold for SFace (cosine 0.363); the default sits above the distance the calibrated decision stops at
# on the dev set (FPIR 1 %: about 0.51), so the calibration, not the ceiling, decides.
THRESHOLDS: dict[str, tuple[float, float]] = {"sface": (0.55, 0.637), "dlib-resnet": (0.55, 0.6)}


@dataclass(frozen=True)
class FacesSettings:
    workers: int = 0
    deadline_seconds: float = 30.0
    # The model a new gallery is enrolled with; a gallery is always searched with the model it records
    # (bot.service.Core.model_id), until `gallery reencode` moves it.
    model: str = "sface"


@dataclass(frozen=True)
class GallerySettings:
    # `gallery sync` removes at most this share of the gallery's subjects without --yes (a wrong or cut manifest
    # must not empty the gallery unnoticed).
    sync_max_remove_share: float = 0.10


@dataclass(frozen=True)
class RetentionSettings:
    dialog_state_days: int = 30
    audit_retention_days: int = 0


@dataclass(frozen=True)
class AuditSettings:
    head_channel: str = ""
    refusal_window_minutes: int = 10


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 3000
    read_timeout_seconds: float = 30.0
    max_connections: int = 512
    # /healthz's details and /metrics: served only here, on 127.0.0.1 ($LOCAL_PORT wins), never on the public port.
    local_port: int = 9300
    # Room reserved at start for inputs the bot promised to apply once the disk has room again (bot.store.spool).
    spool_mb: int = 16
    # This replica's name in /healthz and the logs when several serve one database ($BOT_REPLICA_ID wins;
    # empty: host:port).
    replica_id: str = ""


def replica_id(settings: Settings, env: Mapping[str, str], port: int) -> str:
    """$BOT_REPLICA_ID, else [server] replica_id, else this host's name and the public port."""
    import socket

    return ((env.get("BOT_REPLICA_ID") or "").strip() or settings.server.replica_id.strip()
            or f"{socket.gethostname()}:{port}")


@dataclass(frozen=True)
class ReviewSettings:
    mode: str = "direct"  # "direct": candidates go to the requester; "examiner": an examiner reviews them first
    examiners: tuple[str, ...] = ()
    examiner_groups: tuple[str, ...] = ()
    review_channel: str = ""
    review_candidates: int = 10
    review_fpir: float = 0.10
    reviewers_required: int = 1
    claim_minutes: int = 15
    claim_timeout_minutes: int = 30
    approval: str = "never"  # "never" | "flagged" | "always"
    supervisors: tuple[str, ...] = ()
    supervisor_groups: tuple[str, ...] = ()
    approval_minutes: int = 60
    # The person's OS account name (see [cli]) -> Slack user ID of command-line requesters: where a release or an approved result of their
    # CLI search is sent (a direct message), and who may not review or approve it. Unmapped: the review channel.
    cli_slack_users: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreSettings:
    # PostgreSQL (postgresql://user@host/db) several replicas share (bot.store.backend); empty: the data dir's
    # files. Never with a password here: BOT_DATABASE_URL carries credentials.
    url: str = ""


def database_url(settings: Settings, env: Mapping[str, str]) -> str:
    """The database URL: $BOT_DATABASE_URL wins over [store] url; "" when neither is set (the files)."""
    return (env.get("BOT_DATABASE_URL") or "").strip() or settings.store.url


@dataclass(frozen=True)
class CliSettings:
    # OS accounts several people run commands as (besides the data dir's owner and root): on them the requester
    # is the person behind the account (the login session, else SUDO_USER), and without one the command is refused.
    shared_accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class OversightSettings:
    """Oversight that someone reads (CONTRACTS ### 14): anomaly alerts, sampled audits, the public report."""
    alert_channel: str = ""  # a private channel the alerts are posted to; empty: alerts only in the console
    auditors: tuple[str, ...] = ()  # console only: read the archive, review alerts and sampled requests
    auditor_groups: tuple[str, ...] = ()
    check_minutes: int = 15  # the leader runs the alert rules this often (and once at start)
    verify_minutes: int = 60  # the leader's full `audit verify` (and once at start)
    # A requester's day: at least max(daily_min, daily_factor x their median day over baseline_days).
    daily_min: int = 5
    daily_factor: float = 3.0
    baseline_days: int = 56
    subject_requesters: int = 3  # one gallery subject released to this many requesters ...
    subject_days: int = 30  # ... within this many days
    probe_repeats: int = 3  # one probe photo (SHA-256) searched this many times ...
    probe_days: int = 7  # ... within this many days
    refusals_per_day: int = 5  # refusals in a day by one person
    hours_low_pct: float = 5.0  # a search outside the requester's usual hours: before this percentile ...
    hours_high_pct: float = 95.0  # ... or after this one of their own search times of day
    hours_min_searches: int = 20  # ... once they have this many searches
    sample_percent: float = 5.0  # the monthly sampled audit: max(sample_min, ceil(sample_percent % of N))
    sample_min: int = 10
    min_cell: int = 5  # the public report suppresses counts below this


@dataclass(frozen=True)
class ConsoleSettings:
    """The read-only web console under /console (CONSOLE_CLIENT_ID and CONSOLE_CLIENT_SECRET switch it on)."""
    public_url: str = ""  # the console's origin as browsers reach it (https://frbot.example.org), no path
    recheck_minutes: int = 5  # a session's roles are asked of Slack again when older than this
    session_hours: int = 12  # a session ends this long after sign-in


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    slack: SlackSettings = field(default_factory=SlackSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    faces: FacesSettings = field(default_factory=FacesSettings)
    gallery: GallerySettings = field(default_factory=GallerySettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    cli: CliSettings = field(default_factory=CliSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    oversight: OversightSettings = field(default_factory=OversightSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    timezone: str = "America/Los_Angeles"

    def with_data_dir(self, data_dir: Path | str) -> Settings:
        return replace(self, data_dir=Path(data_dir))


_SECTIONS = {
    "slack": SlackSettings,
    "policy": PolicySettings,
    "search": SearchSettings,
    "images": ImageSettings,
    "faces": FacesSettings,
    "gallery": GallerySettings,
    "retention": RetentionSettings,
    "server": ServerSettings,
    "audit": AuditSettings,
    "review": ReviewSettings,
    "cli": CliSettings,
    "store": StoreSettings,
    "oversight": OversightSettings,
    "console": ConsoleSettings,
}


def _section(cls: type, raw: Mapping[str, Any], name: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if name == "server" and "metrics_public" in unknown:
        raise ConfigError("[server] metrics_public is gone: /metrics and /healthz's details are served on "
                          "127.0.0.1 at [server] local_port (default 9300, $LOCAL_PORT wins); remove the key")
    if unknown:
        raise ConfigError(f"[{name}] has unknown key(s): {', '.join(sorted(unknown))}")
    values = {}
    for key, value in raw.items():
        default = getattr(cls(), key)
        if isinstance(default, dict):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"[{name}] {key} must be a table of strings")
            value = dict(value)
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"[{name}] {key} must be a list of strings")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"[{name}] {key} must be true or false")
        elif isinstance(default, float):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"[{name}] {key} must be a number")
            value = float(value)
        elif isinstance(default, int):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"[{name}] {key} must be a whole number")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"[{name}] {key} must be a string")
        values[key] = value
    return cls(**values)


def validate(settings: Settings) -> Settings:
    """Refuse settings that would break policy or the software; return them unchanged when fine."""
    try:
        re.compile(settings.policy.call_number_pattern)
    except re.error as exc:
        raise ConfigError(f"[policy] call_number_pattern is not a valid regular expression: {exc}") from None
    if not 0.0 < settings.search.threshold <= THRESHOLDS["dlib-resnet"][1]:
        raise ConfigError("[search] threshold (dlib-resnet's ceiling) must be above 0 and at most 0.6")
    for model_id, value in settings.search.thresholds.items():
        if model_id not in THRESHOLDS:
            raise ConfigError(f"[search.thresholds] {model_id}: not a face model (one of "
                              f"{', '.join(repr(m) for m in FACE_MODELS)})")
        limit = THRESHOLDS[model_id][1]
        if not 0.0 < value <= limit:
            raise ConfigError(f"[search.thresholds] {model_id} must be above 0 and at most {limit} "
                              f"(in {model_id}'s own distance)")
    if not 0 < settings.server.port < 65536:
        raise ConfigError("[server] port must be between 1 and 65535")
    if not 0 < settings.server.local_port < 65536:
        raise ConfigError("[server] local_port must be between 1 and 65535")
    if not 1 <= settings.server.spool_mb <= 1024:
        raise ConfigError("[server] spool_mb must be between 1 and 1024")
    if len(settings.server.replica_id) > 64 or any(c.isspace() for c in settings.server.replica_id):
        raise ConfigError("[server] replica_id is at most 64 characters with no white space")
    if not settings.server.host.strip():
        raise ConfigError("[server] host must not be empty (0.0.0.0: every interface; 127.0.0.1: behind a local proxy)")
    if not 0.5 <= settings.server.read_timeout_seconds <= 300.0:
        raise ConfigError("[server] read_timeout_seconds must be between 0.5 and 300")
    if not 1 <= settings.server.max_connections <= 100_000:
        raise ConfigError("[server] max_connections must be between 1 and 100000")
    if not 1.0 <= settings.faces.deadline_seconds <= 600.0:
        raise ConfigError("[faces] deadline_seconds must be between 1 and 600")
    if not 0.0 < settings.search.target_fpir <= 0.1:
        raise ConfigError("[search] target_fpir must be above 0 and at most 0.1 (one stranger in ten searches)")
    if not 1 <= settings.search.max_candidates <= MAX_CANDIDATES_CAP:
        raise ConfigError(f"[search] max_candidates must be between 1 and {MAX_CANDIDATES_CAP}")
    days = settings.retention.audit_retention_days
    if days and days < MIN_AUDIT_RETENTION_DAYS:
        raise ConfigError(
            f"[retention] audit_retention_days = {days} is under the {MIN_AUDIT_RETENTION_DAYS}-day floor "
            "(CJIS Security Policy 5.4.7 keeps transaction logs at least one year); set 0 (keep forever) "
            f"or {MIN_AUDIT_RETENTION_DAYS} or more"
        )
    if not 1 <= settings.slack.recent_call_hours <= 24 * 30:
        raise ConfigError("[slack] recent_call_hours must be between 1 and 720")
    if not 0 <= settings.audit.refusal_window_minutes <= 1440:
        raise ConfigError("[audit] refusal_window_minutes must be between 0 (every refusal its own entry) and 1440")
    _validate_review(settings.review)
    for account in settings.cli.shared_accounts:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}\$?", account):
            raise ConfigError(f"[cli] shared_accounts: {account!r} is not an OS account name")
    _validate_store_url(settings.store.url)
    if settings.slack.call_index_days < 1:
        raise ConfigError("[slack] call_index_days must be at least 1")
    if not 1 <= settings.slack.max_calls_per_message <= 1000:
        raise ConfigError("[slack] max_calls_per_message must be between 1 and 1000")
    if settings.slack.call_log_detail not in ("full", "summary"):
        raise ConfigError('[slack] call_log_detail must be "full" or "summary"')
    if settings.slack.require_known_call and not settings.slack.dispatch_channel.strip():
        raise ConfigError(
            "[slack] require_known_call = true needs dispatch_channel (the channel ID where calls are "
            "posted): with none, every call number would be refused as unknown. Set dispatch_channel, or "
            "set require_known_call = false"
        )
    if settings.slack.dialog_timeout_minutes < 1:
        raise ConfigError("[slack] dialog_timeout_minutes must be at least 1")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(settings.timezone)
    except Exception:  # noqa: BLE001 - ZoneInfo raises several kinds for a bad name
        raise ConfigError(f"timezone = {settings.timezone!r} is not a time zone name (e.g. America/Los_Angeles)")
    if settings.retention.dialog_state_days < 1:
        raise ConfigError("[retention] dialog_state_days must be at least 1 (running requests keep their state)")
    if settings.faces.workers < 0:
        raise ConfigError("[faces] workers must be 0 (one per core) or more")
    if settings.faces.model not in FACE_MODELS:
        raise ConfigError(f"[faces] model must be one of {', '.join(repr(m) for m in FACE_MODELS)} "
                          f"(got {settings.faces.model!r})")
    if not 0.0 <= settings.gallery.sync_max_remove_share <= 1.0:
        raise ConfigError("[gallery] sync_max_remove_share must be between 0 (every removal needs --yes) and 1 "
                          "(never asks)")
    if settings.policy.justification_min_chars < 1:
        raise ConfigError("[policy] justification_min_chars must be at least 1")
    for key in ("max_bytes", "max_pixels", "min_face_px", "detect_max_side"):
        if getattr(settings.images, key) < 1:
            raise ConfigError(f"[images] {key} must be positive")
    if not 1.0 <= settings.images.max_aspect_ratio <= 100.0:
        raise ConfigError("[images] max_aspect_ratio must be between 1 (square pictures only) and 100")
    _validate_oversight(settings)
    return settings


def _validate_oversight(settings: Settings) -> None:
    o, c = settings.oversight, settings.console
    for key in ("check_minutes", "verify_minutes", "daily_min", "baseline_days", "subject_requesters",
                "subject_days", "probe_repeats", "probe_days", "refusals_per_day", "hours_min_searches",
                "sample_min", "min_cell"):
        if getattr(o, key) < 1:
            raise ConfigError(f"[oversight] {key} must be at least 1")
    if o.daily_factor < 1.0:
        raise ConfigError("[oversight] daily_factor must be at least 1 (a multiple of the requester's usual day)")
    if not 0.0 <= o.hours_low_pct < o.hours_high_pct <= 100.0:
        raise ConfigError("[oversight] hours_low_pct and hours_high_pct are percentiles, low below high (5 and 95)")
    if not 0.0 < o.sample_percent <= 100.0:
        raise ConfigError("[oversight] sample_percent must be above 0 and at most 100")
    if c.recheck_minutes < 1 or c.session_hours < 1:
        raise ConfigError("[console] recheck_minutes and session_hours must be at least 1")
    url = c.public_url
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if (parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/")
                or parts.query or parts.fragment or (parts.scheme == "http" and not loopback)):
            raise ConfigError("[console] public_url must be an https:// origin with no path (e.g. "
                              "https://frbot.example.org; http:// only on a loopback address)")


def _validate_store_url(url: str) -> None:
    """[store] url: empty, or a postgresql:// URL with no password (credentials travel only in the environment)."""
    if not url:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError("[store] url must be a postgresql:// URL (or empty: the data dir's files)")
    if parts.password is not None or "password=" in parts.query:
        raise ConfigError("[store] url holds a password: the settings file is no place for it. Remove it and put "
                          "the whole URL, with its password, in BOT_DATABASE_URL")


def _validate_review(review: ReviewSettings) -> None:
    if review.mode not in ("direct", "examiner"):
        raise ConfigError('[review] mode must be "direct" or "examiner"')
    if review.mode == "examiner" and not (review.examiners or review.examiner_groups):
        raise ConfigError("[review] mode = \"examiner\" needs examiners or examiner_groups: with none, no search "
                          "result could ever reach a requester")
    if review.mode == "examiner" and not review.review_channel.strip():
        raise ConfigError("[review] mode = \"examiner\" needs review_channel (a private channel of the examiners)")
    if review.reviewers_required not in (1, 2):
        raise ConfigError("[review] reviewers_required must be 1 or 2")
    if not 0.0 < review.review_fpir <= 0.5:
        raise ConfigError("[review] review_fpir must be above 0 and at most 0.5")
    if not 1 <= review.review_candidates <= MAX_CANDIDATES_CAP:
        raise ConfigError(f"[review] review_candidates must be between 1 and {MAX_CANDIDATES_CAP}")
    for key in ("claim_minutes", "claim_timeout_minutes", "approval_minutes"):
        if getattr(review, key) < 1:
            raise ConfigError(f"[review] {key} must be at least 1")
    if review.approval not in ("never", "flagged", "always"):
        raise ConfigError('[review] approval must be "never", "flagged" or "always"')
    if review.approval != "never" and not (review.supervisors or review.supervisor_groups):
        raise ConfigError("[review] approval needs supervisors or supervisor_groups")
    if review.approval != "never" and not review.review_channel.strip():
        raise ConfigError("[review] approval needs review_channel (a private channel where supervisors decide)")
    for user, slack_id in review.cli_slack_users.items():
        if not re.fullmatch(r"[UW][A-Z0-9]{2,30}", slack_id):
            raise ConfigError(f"[review] cli_slack_users: {user!r} = {slack_id!r} is not a Slack user ID (U... or W...)")


def _thresholds(raw: Any) -> dict[str, float]:
    """[search.thresholds] as {model id: number}; ConfigError when it is not a table of numbers."""
    if not isinstance(raw, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            for v in raw.values()):
        raise ConfigError("[search.thresholds] must be a table of numbers, one per face model "
                          '(e.g. sface = 0.55)')
    return {str(k): float(v) for k, v in raw.items()}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML settings ($BOT_CONFIG or config/settings.toml) and $BOT_DATA_DIR."""
    env = os.environ if env is None else env
    path = Path(path or env.get("BOT_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"settings file not found: {path} (set BOT_CONFIG to its path)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from None
    kwargs: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        section = raw.pop(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{name}] must be a table")
        if name == "search" and "thresholds" in section:
            section = {**section, "thresholds": _thresholds(section["thresholds"])}
            kwargs[name] = replace(_section(cls, {k: v for k, v in section.items() if k != "thresholds"}, name),
                                   thresholds=section["thresholds"])
            continue
        kwargs[name] = _section(cls, section, name)
    if "timezone" in raw:
        kwargs["timezone"] = str(raw.pop("timezone"))
    if raw:
        raise ConfigError(f"settings file has unknown key(s): {', '.join(sorted(raw))}")
    kwargs["data_dir"] = Path(env.get("BOT_DATA_DIR") or "data")
    return validate(Settings(**kwargs))
