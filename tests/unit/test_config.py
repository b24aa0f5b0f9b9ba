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


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CIRCLE_SERVICE_URL": "http://127.0.0.1:31415\r\nX-Evil: 1"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_SERVICE_URL": "http://[::1"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_SERVICE_URL": "http://127.0.0.1:31415/?x=1"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_SERVICE_URL": "http://127.0.0.1:31415/#top"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_SERVICE_URL": "127.0.0.1:31415"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_SERVICE_URL": "http://127.0.0.1:99999"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_SERVICE_URL": "http://bücher.example:31415"}, "CIRCLE_SERVICE_URL"),  # httpcore takes ASCII only
        ({"CIRCLE_TOKEN_URL": ":::"}, "CIRCLE_TOKEN_URL"),
        ({"CIRCLE_TOKEN_URL": "https://api.example/token\r\n"}, "CIRCLE_TOKEN_URL"),
        ({"CIRCLE_TOKEN_URL": "ftp://api.example/token"}, "CIRCLE_TOKEN_URL"),
        ({"CIRCLE_TOKEN_BACKEND_URL": "https:///token"}, "CIRCLE_TOKEN_BACKEND_URL"),
        ({"CIRCLE_SERVICE_TIMEOUT": "nan"}, "CIRCLE_SERVICE_TIMEOUT"),
        ({"CIRCLE_SERVICE_TIMEOUT": "inf"}, "CIRCLE_SERVICE_TIMEOUT"),
        ({"CIRCLE_TOKEN_TIMEOUT": "0"}, "CIRCLE_TOKEN_TIMEOUT"),
        ({"CIRCLE_TOKEN_SOURCE": "vault"}, "CIRCLE_TOKEN_SOURCE"),
        ({"CIRCLE_TOKEN_COMMAND": "fetch 'unclosed"}, "CIRCLE_TOKEN_COMMAND"),
        ({"CIRCLE_TOKEN_BACKEND_HEADER": "no colon here"}, "CIRCLE_TOKEN_BACKEND_HEADER"),
        ({"CIRCLE_TOKEN_BACKEND_HEADER": "X-Key: a\r\nX-Evil: 1"}, "CIRCLE_TOKEN_BACKEND_HEADER"),
        ({"CIRCLE_TOKEN_QUERY_ENCODING": "base64"}, "CIRCLE_TOKEN_QUERY_ENCODING"),
        ({"CIRCLE_SIGN_QUESTION_MARK": "maybe"}, "CIRCLE_SIGN_QUESTION_MARK"),
        ({"CIRCLE_BRIDGE_MAX_UPSTREAM_BYTES": "-5"}, "CIRCLE_BRIDGE_MAX_UPSTREAM_BYTES"),
    ],
)
def test_bad_values_are_refused_at_load_naming_the_setting(env: dict[str, str], name: str, tmp_path: Path) -> None:
    with pytest.raises(BadConfiguration) as raised:
        load_settings({}, env, tmp_path / "none.toml")
    assert raised.value.data["invalid"] == [name]
    assert raised.value.code == -33007


def test_a_token_url_may_end_in_a_question_mark_as_circles_docs_write_it(tmp_path: Path) -> None:
    settings = load_settings({}, {"CIRCLE_TOKEN_URL": "https://api.circlesecurity.ai/api/token?"}, tmp_path / "n")
    assert settings.token_url.endswith("?")


def test_each_token_source_needs_its_own_settings(tmp_path: Path) -> None:
    def missing(**env: str) -> list[str]:
        return load_settings({}, env, tmp_path / "none.toml").missing_credentials()

    assert missing(CIRCLE_TOKEN_SOURCE="command") == ["CIRCLE_APP_KEY", "CIRCLE_TOKEN_COMMAND"]
    assert missing(CIRCLE_TOKEN_SOURCE="url", CIRCLE_APP_KEY="k") == ["CIRCLE_TOKEN_BACKEND_URL"]
    assert missing(CIRCLE_TOKEN_SOURCE="client", CIRCLE_APP_KEY="k") == []
    assert missing(CIRCLE_SECRET="s3cr3t-value") == ["CIRCLE_CUSTOMER_ID", "CIRCLE_APP_KEY", "CIRCLE_END_USER_ID"]
    assert load_settings({}, {}, tmp_path / "none.toml").effective_token_source == "secret"


def test_the_config_file_chooses_a_source_too(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('token_source = "url"\ntoken_backend_url = "https://backend.example/circle-token"\n')
    settings = load_settings({}, {}, config)
    assert settings.effective_token_source == "url"
    assert settings.token_backend_url == "https://backend.example/circle-token"


def test_doctor_view_masks_app_key_command_header_and_backend_path(tmp_path: Path) -> None:
    settings = load_settings(
        {},
        {
            "CIRCLE_APP_KEY": "appkey-demo-7f3a9c",
            "CIRCLE_TOKEN_SOURCE": "url",
            "CIRCLE_TOKEN_COMMAND": "print-token --password hunter22",
            "CIRCLE_TOKEN_BACKEND_URL": "https://user:pw@backend.example/tokens/secret-path",
            "CIRCLE_TOKEN_BACKEND_HEADER": "Authorization: Bearer backend-key-123456",
        },
        tmp_path / "none.toml",
    )
    view = settings.masked()
    text = repr(view)
    assert view["app_key"] == "appk… (18 chars)"
    assert view["token_command"] == "(set)"
    assert view["token_backend_url"] == "https://backend.example/…"
    for hidden in ("7f3a9c", "hunter22", "secret-path", "pw@", "backend-key-123456"):
        assert hidden not in text
    assert view["token_source"] == "url"
