from pathlib import Path

import pytest

from circle_bridge._config import PRODUCTION_TOKEN_URL, load_settings
from circle_bridge._errors import BadConfiguration


def test_precedence_cli_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'customer_id = "from-file"\napp_key = "file-key"\nend_user_id = "file-user"\nservice_timeout = 3\n'
    )
    config.chmod(0o600)
    env = {"CIRCLE_APP_KEY": "env-key", "CIRCLE_END_USER_ID": "env-user"}
    settings = load_settings({"end_user_id": "cli-user", "token_url": None}, env, config)
    assert settings.customer_id == "from-file"
    assert settings.app_key == "env-key"
    assert settings.end_user_id == "cli-user"
    assert settings.service_timeout == 3.0
    assert settings.token_url == PRODUCTION_TOKEN_URL
    assert settings.config_file == str(config)


def test_missing_file_is_fine_and_names_missing_credentials(tmp_path: Path) -> None:
    settings = load_settings({}, {}, tmp_path / "none.toml")
    assert settings.missing_credentials() == [
        "CIRCLE_CUSTOMER_ID",
        "CIRCLE_APP_KEY",
        "CIRCLE_END_USER_ID",
        "CIRCLE_SECRET",
    ]
    with pytest.raises(BadConfiguration) as raised:
        settings.require_credentials()
    assert raised.value.data["missing"] == settings.missing_credentials()


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"CIRCLE_SERVICE_TIMEOUT": "soon"}, "CIRCLE_SERVICE_TIMEOUT"),
        ({"CIRCLE_NONCE_UNIT": "us"}, "CIRCLE_NONCE_UNIT"),
        ({"CIRCLE_BRIDGE_LOG_LEVEL": "loud"}, "CIRCLE_BRIDGE_LOG_LEVEL"),
        ({"CIRCLE_BRIDGE_MAX_IN_FLIGHT": "0"}, "CIRCLE_BRIDGE_MAX_IN_FLIGHT"),
        ({"CIRCLE_TOKEN_TIMEOUT": "-1"}, "CIRCLE_TOKEN_TIMEOUT"),
    ],
)
def test_invalid_values_are_named(env: dict[str, str], text: str, tmp_path: Path) -> None:
    with pytest.raises(BadConfiguration, match=text):
        load_settings({}, env, tmp_path / "none.toml")


def test_unknown_and_malformed_file_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('customerid = "typo"\n')
    with pytest.raises(BadConfiguration, match="customerid"):
        load_settings({}, {}, config)
    config.write_text("customer_id = \n")
    with pytest.raises(BadConfiguration, match="not valid TOML"):
        load_settings({}, {}, config)


def test_secret_never_in_repr(tmp_path: Path) -> None:
    settings = load_settings({}, {"CIRCLE_SECRET": "s3cr3t-value"}, tmp_path / "none.toml")
    assert "s3cr3t-value" not in repr(settings)
    assert settings.masked()["secret"] == "(set)"
