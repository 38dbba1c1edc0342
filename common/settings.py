"""The settings base both services share: token groups, TLS, logging, the config file.

Each service extends it (worker/settings.py, hub/settings.py); values are read once from
the environment (and an optional file) when the service starts.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9]{30,60}$")


def parse_token_list(value: Any) -> list[str]:
    """Accept a list or a comma/whitespace separated string of tokens, refusing bad ones.

    The spec says a token is 30 to 60 alphanumerics; anything else is a configuration
    mistake that must stop start-up rather than silently open or close the API.
    """
    tokens = split_list(value)
    for token in tokens:
        if not TOKEN_PATTERN.fullmatch(token):
            raise ValueError("every token must be 30 to 60 alphanumeric characters")
    return tokens


# Read as a plain comma-separated string, not JSON.
TokenList = Annotated[list[str], NoDecode]


class ServiceSettings(BaseSettings):
    """What both services read: environment variables prefixed SCANHUB_, or a config file.

    `SCANHUB_CONFIG` may name a `.env`-style file whose keys are the same variable names;
    the environment wins over the file.
    """

    model_config = SettingsConfigDict(env_prefix="SCANHUB_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8081
    # Logging (common/logs.py): the level, and `text` lines or `json` lines.
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Token groups (submit, tasks, admin). An empty group means no auth for that group.
    submit_tokens: TokenList = Field(default_factory=list)
    tasks_tokens: TokenList = Field(default_factory=list)
    admin_tokens: TokenList = Field(default_factory=list)
    # Serve with no token at all on a non-loopback address (anyone who reaches it can read
    # every report and delete tasks); refused at start-up unless set.
    allow_open: bool = False
    # Signs OAuth2 bearer tokens; unset: a random secret per process (see common/auth.py).
    bearer_secret: str | None = None
    # HTTPS. Your own certificate and key, or `tls` on: a certificate issued at start-up by
    # the CA in tls_ca_dir (default tls_dir), made there if absent (see common/tls.py).
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    tls: bool = False
    tls_dir: Path = Path("/tmp/scanhub-tls")
    tls_ca_dir: Path | None = None
    # Names this service is reached by (its certificate's subject alternative names);
    # default: the host name. localhost and 127.0.0.1 are always added, for probes.
    tls_names: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where submissions are written while they are received; each service has its own default.
    spool_dir: Path = Path("/tmp/scanhub-spool")
    min_free_spool_bytes: int = 256 * 1024**2
    max_upload_bytes: int = 2 * 1024**3
    max_form_field_bytes: int = 1024 * 1024
    # Sent with every 503 (overloaded, disk full, unhealthy).
    retry_after_seconds: int = 5
    # Slow or stalled clients (common/connections.py): open connections at once (kept below
    # the file descriptor limit), time to send complete request headers, idle time between
    # requests on a kept-alive connection, and time a request body may send nothing.
    max_connections: int = 1000
    header_timeout_seconds: float = 10
    keepalive_timeout_seconds: float = 75
    body_read_timeout_seconds: float = 30

    @field_validator("tls_names", mode="before")
    @classmethod
    def _names(cls, value: Any) -> list[str]:
        return split_list(value)

    @property
    def serves_https(self) -> bool:
        return self.tls or self.tls_certificate is not None

    @property
    def ca_file(self) -> Path:
        """The CA that issued this service's certificate when `tls` made it."""
        return (self.tls_ca_dir or self.tls_dir) / "ca.pem"

    @field_validator("log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("submit_tokens", "tasks_tokens", "admin_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> list[str]:
        return parse_token_list(value)

    @field_validator("bearer_secret")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("bearer_secret must be at least 32 characters (RFC 7518 §3.2)")
        return value

    def open_exposure(self) -> str | None:
        """Why this service must not start: no token configured, a non-loopback address, and
        no `allow_open`. None when it may."""
        if self.allow_open or self.submit_tokens or self.tasks_tokens or self.admin_tokens:
            return None
        if self.host == "localhost" or is_loopback(self.host):
            return None
        return (
            f"refusing to serve on {self.host} with no token configured: anyone who reaches it could "
            "read every report and delete tasks. Set SCANHUB_SUBMIT_TOKENS / SCANHUB_TASKS_TOKENS / "
            "SCANHUB_ADMIN_TOKENS, or SCANHUB_ALLOW_OPEN=true to serve openly on purpose"
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("SCANHUB_CONFIG")
        if config_file:
            file_source = DotEnvSettingsSource(settings_cls, env_file=config_file)
            return (init_settings, env_settings, file_source)
        return (init_settings, env_settings)


# The words a yes/no query parameter or setting accepts, lower case.
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def yes_or_no(text: str) -> bool | None:
    """True or False for one of the yes/no words (any case), None for anything else."""
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    return None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_list(value: Any) -> list[str]:
    """A list, or a comma/whitespace separated string, as a list of non-empty strings."""
    if value is None or value == "":
        return []
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]
