"""Settings: the shipped file loads, and every bad value is refused at start with the key named."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_CONFIG, ConfigError, Settings, load_settings, validate


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_shipped_settings_load_with_their_documented_defaults(tmp_path):
    settings = load_settings(DEFAULT_CONFIG, env={"BOT_DATA_DIR": str(tmp_path)})
    assert settings.search.threshold == 0.55 and settings.search.max_candidates == 5
    assert settings.policy.call_number_pattern == r"^\d{2}-\d{6}$"
    assert settings.slack.requesters == () and settings.slack.file_hosts == ("files.slack.com",)
    assert settings.images.max_aspect_ratio == 8
    assert settings.gallery.sync_max_remove_share == 0.10
    assert settings.data_dir == tmp_path


def test_every_shipped_key_is_commented():
    lines = DEFAULT_CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), f"no comment above: {line}"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[search]\nthreshold = 0.7\n", "threshold"),
        ("[search]\nmax_candidates = 21\n", "max_candidates"),
        ("[retention]\naudit_retention_days = 100\n", "CJIS"),
        ('timezone = "Mars/Olympus"\n', "time zone"),
        ("[policy]\ncall_number_pattern = '(['\n", "call_number_pattern"),
        ("[slack]\nrequesters = 'U1'\n", "requesters"),
        ("[slack]\ncall_log_detail = 'everything'\n", "call_log_detail"),
        ("[slack]\nno_such_key = 1\n", "no_such_key"),
        ("[retention]\ndialog_state_days = 0\n", "dialog_state_days"),
        ("[faces]\nworkers = -1\n", "workers"),
        ("[faces]\nmodel = 'arcface'\n", "[faces] model"),
        ("[faces]\nmodel = 'SFace'\n", "[faces] model"),
        ("[images]\nmax_aspect_ratio = 0.5\n", "max_aspect_ratio"),
        ("[gallery]\nsync_max_remove_share = 1.5\n", "sync_max_remove_share"),
        ("[gallery]\nsync_max_remove_share = 'ten percent'\n", "sync_max_remove_share"),
        ("[search\n", "not valid TOML"),
        ("[search.thresholds]\nsface = 0.7\n", "[search.thresholds] sface must be above 0 and at most 0.637"),
        ("[search.thresholds]\n'dlib-resnet' = 0.65\n", "at most 0.6"),
        ("[search.thresholds]\narcface = 0.5\n", "arcface: not a face model"),
        ("[search.thresholds]\nsface = 'low'\n", "table of numbers"),
        ("[search]\nthresholds = 0.5\n", "table of numbers"),
        ("[store]\nurl = 'postgresql://frbot_app:secret@db/frbot'\n", "[store] url holds a password"),
        ("[store]\nurl = 'postgresql://frbot_app@db/frbot?password=secret'\n", "BOT_DATABASE_URL"),
        ("[store]\nurl = 'mysql://db/frbot'\n", "postgresql://"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        load_settings(write(tmp_path, text), env={})
    assert fragment in str(info.value)


def test_the_database_url_from_the_environment_wins_over_the_settings(tmp_path):
    from bot.config import database_url

    settings = load_settings(write(tmp_path, "[store]\nurl = 'postgresql://frbot_app@db/frbot'\n"), env={})
    assert database_url(settings, {}) == "postgresql://frbot_app@db/frbot"
    assert database_url(settings, {"BOT_DATABASE_URL": "postgresql://frbot_app:pw@other/frbot"}) == \
        "postgresql://frbot_app:pw@other/frbot"
    assert database_url(Settings(), {}) == ""  # no database: the data dir's files


def test_each_model_has_its_own_ceiling_and_the_old_threshold_is_dlibs(tmp_path):
    """[search.thresholds] sets a ceiling per model in its own distance; the old [search] threshold is
    dlib-resnet's (CONTRACTS ### 12); a model not set gets its default from the code."""
    from bot.config import THRESHOLDS

    old = load_settings(write(tmp_path, "[search]\nthreshold = 0.5\n"), env={}).search
    assert old.threshold_for("dlib-resnet") == 0.5 and old.threshold_for("sface") == THRESHOLDS["sface"][0]
    table = load_settings(write(tmp_path, "[search]\nthreshold = 0.5\n[search.thresholds]\nsface = 0.6\n"
                                          "'dlib-resnet' = 0.45\n"), env={}).search
    assert table.threshold_for("sface") == 0.6 and table.threshold_for("dlib-resnet") == 0.45
    assert table.max_candidates == 5  # the rest of [search] is read as before


def test_faces_model_names_a_model_and_the_engine_is_made_with_it(tmp_path):
    """[faces] model (default sface) is the model of a new gallery's engine; a gallery already enrolled is worked
    with its own model whatever the setting (CONTRACTS ### 12)."""
    from bot.faces import models
    from bot.service import Core

    assert load_settings(DEFAULT_CONFIG, env={"BOT_DATA_DIR": str(tmp_path)}).faces.model == "sface"
    assert Settings().faces.model == models.DEFAULT == "sface"
    settings = load_settings(write(tmp_path, "[faces]\nmodel = 'dlib-resnet'\n"), env={"BOT_DATA_DIR": str(tmp_path)})
    assert settings.faces.model == "dlib-resnet"
    engine = Core(settings).engine  # made, not started: no worker runs
    assert engine.model == "dlib-resnet" and engine.worker_pids() == []
    from bot.config import FACE_MODELS

    assert set(FACE_MODELS) == set(models.IDS)


def test_audit_retention_of_a_year_or_more_is_accepted(tmp_path):
    settings = load_settings(write(tmp_path, "[retention]\naudit_retention_days = 365\n"), env={})
    assert settings.retention.audit_retention_days == 365


def test_missing_settings_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError, match="BOT_CONFIG"):
        load_settings(tmp_path / "nope.toml", env={})


def test_examiner_mode_without_examiners_or_a_review_channel_is_refused_at_start(tmp_path):
    from dataclasses import replace as rp

    from bot.config import ReviewSettings

    base = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match="examiners or examiner_groups"):
        validate(rp(base, review=ReviewSettings(mode="examiner", review_channel="CREVIEW")))
    with pytest.raises(ConfigError, match="review_channel"):
        validate(rp(base, review=ReviewSettings(mode="examiner", examiners=("U0EX",))))
    with pytest.raises(ConfigError, match="reviewers_required"):
        validate(rp(base, review=ReviewSettings(reviewers_required=3)))
    with pytest.raises(ConfigError, match="supervisors"):
        validate(rp(base, review=ReviewSettings(approval="always")))
    validate(rp(base, review=ReviewSettings(mode="examiner", examiners=("U0EX",), review_channel="CREVIEW")))


def test_cli_slack_users_map_os_accounts_to_slack_user_ids(tmp_path):
    good = load_settings(write(tmp_path, '[review]\ncli_slack_users = { analyst1 = "U0123ABCD" }\n'),
                         env={"BOT_DATA_DIR": str(tmp_path)})
    assert good.review.cli_slack_users == {"analyst1": "U0123ABCD"}
    with pytest.raises(ConfigError, match="analyst1.*not a Slack user ID"):
        load_settings(write(tmp_path, '[review]\ncli_slack_users = { analyst1 = "@analyst" }\n'), env={})
    with pytest.raises(ConfigError, match="table of strings"):
        load_settings(write(tmp_path, '[review]\ncli_slack_users = ["analyst1"]\n'), env={})
    with pytest.raises(ConfigError, match="table of strings"):
        load_settings(write(tmp_path, '[review]\ncli_slack_users = { analyst1 = 7 }\n'), env={})


def test_metrics_public_is_gone_and_says_where_the_details_are(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[server]\nmetrics_public = true\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "local_port" in str(info.value) and "127.0.0.1" in str(info.value)


def test_local_port_is_a_port(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[server]\nlocal_port = 70000\n")
    with pytest.raises(ConfigError, match="local_port"):
        load_settings(path, env={})
