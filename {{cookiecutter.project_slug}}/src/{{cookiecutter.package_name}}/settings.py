"""Settings: environment -> Settings, read once at startup and passed down.

Each group reads its own prefix (``DB_``, ``CACHE_``, ``HEALTH_`` ...); the conventional names
(``DATABASE_URL``, ``PORT``, ``WEB_CONCURRENCY``, ``LOG_LEVEL``) work as they are. The service's optional
parts (``features/``) bring their own groups, handed to ``Settings.from_env`` and validated with these.
An empty variable counts as unset. ``Settings.from_env()`` turns every invalid value into one
line naming the variable, so a bad deploy stops at once with a message an operator can act on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Self, TypeVar, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

Seconds = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
Ratio = Annotated[float, Field(gt=0, le=1)]
G = TypeVar("G", bound="Group")

_SQLITE_DEFAULT = "sqlite+aiosqlite:///./{{ cookiecutter.package_name }}.db"


class SettingsError(Exception):
    """Invalid configuration: one line per invalid variable."""


def group_config(prefix: str = "") -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix, frozen=True, env_ignore_empty=True, populate_by_name=True, extra="ignore"
    )


class Group(BaseSettings):
    model_config = group_config()

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        info = cls.model_fields[field]
        if isinstance(info.validation_alias, AliasChoices):
            return str(info.validation_alias.choices[0])
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def env_alias(name: str) -> Any:
    return AliasChoices(name)


class ServiceSettings(Group):
    name: str = Field("{{ cookiecutter.project_slug }}", validation_alias=env_alias("SERVICE_NAME"))
    environment: str = Field("development", validation_alias=env_alias("ENVIRONMENT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias=env_alias("LOG_LEVEL"))
    request_timeout: Seconds = Field(10.0, validation_alias=env_alias("REQUEST_TIMEOUT"))
    admin_token: SecretStr | None = Field(None, validation_alias=env_alias("ADMIN_TOKEN"))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ServerSettings(Group):
    host: str = Field("0.0.0.0", validation_alias=env_alias("HOST"))  # noqa: S104 - containers listen on all interfaces
    port: Annotated[int, Field(ge=1, le=65535)] = Field({{cookiecutter.port}}, validation_alias=env_alias("PORT"))
    # /metrics, /admin and /health/detailed answer here only (management.py), a port no Service exposes.
    management_port: Annotated[int, Field(ge=1, le=65535)] = Field({{cookiecutter.management_port}}, validation_alias=env_alias("MANAGEMENT_PORT"))
    workers: PositiveInt = Field(2, validation_alias=env_alias("WEB_CONCURRENCY"))
    graceful_timeout: Seconds = Field(30.0, validation_alias=env_alias("GRACEFUL_TIMEOUT"))
    keepalive_seconds: Seconds = Field(75.0, validation_alias=env_alias("KEEPALIVE_SECONDS"))
    worker_timeout_seconds: Seconds = Field(60.0, validation_alias=env_alias("WORKER_TIMEOUT_SECONDS"))
    max_requests: Annotated[int, Field(ge=0)] = Field(0, validation_alias=env_alias("MAX_REQUESTS"))
    max_requests_jitter: Annotated[int, Field(ge=0)] = Field(0, validation_alias=env_alias("MAX_REQUESTS_JITTER"))
    shutdown_close_seconds: Seconds = Field(5.0, validation_alias=env_alias("SHUTDOWN_CLOSE_SECONDS"))
    # What one client may send (protocol.py, middleware.BodyLimits): bounded so that no request can take a
    # worker's memory or hold its connections.
    max_body_bytes: PositiveInt = Field(1024 * 1024, validation_alias=env_alias("MAX_BODY_BYTES"))
    body_read_timeout_seconds: Seconds = Field(10.0, validation_alias=env_alias("BODY_READ_TIMEOUT_SECONDS"))
    max_header_bytes: PositiveInt = Field(32 * 1024, validation_alias=env_alias("MAX_HEADER_BYTES"))
    max_header_fields: PositiveInt = Field(100, validation_alias=env_alias("MAX_HEADER_FIELDS"))
    head_timeout_seconds: Seconds = Field(10.0, validation_alias=env_alias("HEAD_TIMEOUT_SECONDS"))
    # Connections (and requests) per worker before uvicorn answers 503: under the open-files limit, which the
    # worker raises to its hard limit (worker.py).
    limit_concurrency: PositiveInt = Field(4096, validation_alias=env_alias("LIMIT_CONCURRENCY"))

    @property
    def drain_seconds(self) -> float:
        """Time left for in-flight requests once closing the resources is budgeted."""
        return self.graceful_timeout - self.shutdown_close_seconds


class DbSettings(Group):
    model_config = group_config("DB_")
    url: SecretStr = Field(SecretStr(_SQLITE_DEFAULT), validation_alias=env_alias("DATABASE_URL"))
    pool_size: PositiveInt = 10
    max_overflow: Annotated[int, Field(ge=0)] = 5
    pool_timeout_seconds: Seconds = 3.0
    pool_recycle_seconds: Seconds = 1800.0
    pool_pre_ping: bool = True
    statement_timeout_ms: PositiveInt = 5000
    connect_timeout_seconds: Seconds = 3.0

    @field_validator("url", mode="before")
    @classmethod
    def _normalise_url(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value
        try:
            url = make_url(raw)
        except ArgumentError:
            raise ValueError("not a database URL (expected postgresql://user:password@host:5432/name)") from None
        backend = url.get_backend_name()
        if backend == "postgresql":
            url = url.set(drivername="postgresql+asyncpg")
        elif backend == "sqlite":
            url = url.set(drivername="sqlite+aiosqlite")
        else:
            raise ValueError(f"unsupported scheme {url.drivername!r} (use postgresql:// or sqlite://)")
        return SecretStr(url.render_as_string(hide_password=False))

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_secret_value().startswith("sqlite")

    @property
    def masked_url(self) -> str:
        return make_url(self.url.get_secret_value()).render_as_string(hide_password=True)


class CacheSettings(Group):
    model_config = group_config("CACHE_")
    ttl_seconds: PositiveInt = 300
    local_max_items: PositiveInt = 10_000
    local_ttl_seconds: Seconds = 30.0


class HealthSettings(Group):
    model_config = group_config("HEALTH_")
    token: SecretStr | None = None
    path_prefix: str = "/health"
    check_timeout_seconds: Seconds = 1.0
    cache_ttl_seconds: Annotated[float, Field(ge=0)] = 1.0
    db_critical: bool = True
    memory_warn_ratio: Ratio = 0.75
    memory_fail_ratio: Ratio = 0.90

    @field_validator("path_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/"):
            raise ValueError("must start with '/' and not end with '/'")
        return value


class ResilienceSettings(Group):
    """Breaker, retry and bulkhead knobs of one dependency; instantiated once per prefix."""

    breaker_window_seconds: Seconds = 30.0
    breaker_minimum_calls: PositiveInt = 20
    breaker_failure_rate: Ratio = 0.5
    breaker_slow_call_seconds: Seconds | None = None
    breaker_slow_call_rate: Ratio = 0.8
    breaker_open_seconds: Seconds = 5.0
    breaker_max_open_seconds: Seconds = 60.0
    breaker_half_open_calls: PositiveInt = 3
    retry_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry_initial_seconds: Seconds = 0.05
    retry_max_seconds: Seconds = 1.0
    retry_budget_ratio: Ratio = 0.1
    retry_budget_floor: Annotated[float, Field(ge=0)] = 3.0
    bulkhead_limit: PositiveInt = 50
    bulkhead_wait_seconds: Annotated[float, Field(ge=0)] = 0.1


class AdmissionSettings(Group):
    """The adaptive concurrency limit of each worker (overload.py, resilience/admission.py)."""

    model_config = group_config("ADMISSION_")
    enabled: bool = True
    initial_limit: PositiveInt = 50
    min_limit: PositiveInt = 3
    max_limit: PositiveInt = 1000
    queue_delay_seconds: Seconds = 0.1


class DbResilienceSettings(ResilienceSettings):
    model_config = group_config("DB_")


class Settings(BaseModel):
    """Every group, validated together; build it with ``Settings.from_env(groups)``."""

    model_config = ConfigDict(frozen=True)

    service: ServiceSettings
    server: ServerSettings
    db: DbSettings
    cache: CacheSettings
    health: HealthSettings
    db_resilience: DbResilienceSettings
    admission: AdmissionSettings
    features: dict[str, SerializeAsAny[Group]] = {}  # the groups the service's optional parts declare

    def feature(self, kind: type[G]) -> G:
        """The settings group ``kind`` of one of the service's optional parts."""
        for group in self.features.values():
            if isinstance(group, kind):
                return group
        raise LookupError(f"no settings group {kind.__name__}: its feature is not part of this service")

    def secrets(self) -> list[SecretStr]:
        """Every secret value of every group, wherever it sits (a field, a list, a mapping)."""
        groups = [getattr(self, key) for key in self.core_groups()] + list(self.features.values())
        return [secret for group in groups for secret in _secrets_in(group)]

    @model_validator(mode="after")
    def _budgets_fit(self) -> Self:
        if self.server.drain_seconds < self.service.request_timeout:
            server, service = self.server, self.service
            raise ValueError(
                f"GRACEFUL_TIMEOUT ({server.graceful_timeout:g}s) must cover REQUEST_TIMEOUT "
                f"({service.request_timeout:g}s) plus SHUTDOWN_CLOSE_SECONDS ({server.shutdown_close_seconds:g}s)"
            )
        if self.server.management_port == self.server.port:
            raise ValueError(f"MANAGEMENT_PORT ({self.server.management_port}) must differ from PORT, the API's")
        if self.health.memory_warn_ratio > self.health.memory_fail_ratio:
            raise ValueError("HEALTH_MEMORY_WARN_RATIO must not exceed HEALTH_MEMORY_FAIL_RATIO")
        return self

    @classmethod
    def core_groups(cls) -> dict[str, type[Group]]:
        """The groups every service has: this model's fields, but the optional parts'."""
        return {name: field.annotation for name, field in cls.model_fields.items() if name != "features"}  # type: ignore[misc]

    @classmethod
    def variables(cls, groups: Mapping[str, type[Group]]) -> set[str]:
        """Every environment variable the service reads, with ``groups`` (the optional parts')."""
        every = cls.core_groups() | dict(groups)
        return {group.env_name(field) for group in every.values() for field in group.model_fields}

    @classmethod
    def from_env(cls, groups: Mapping[str, type[Group]]) -> Settings:
        """Read every core group and ``groups`` (the optional parts') from the environment; raise SettingsError
        naming each bad variable."""
        values: dict[str, Group] = {}
        problems: list[str] = []
        for key, group in (cls.core_groups() | dict(groups)).items():
            try:
                values[key] = group()
            except ValidationError as exc:
                problems.extend(_describe(group, exc))
        if problems:
            raise SettingsError("\n".join(problems))
        try:
            core = {key: values.pop(key) for key in cls.core_groups()}
            return cls.model_validate({**core, "features": values})
        except ValidationError as exc:
            raise SettingsError(
                "\n".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
            ) from None


def is_secret(annotation: Any) -> bool:
    """Whether a field of this type holds a secret: ``SecretStr`` itself, or inside a list, union or mapping."""
    return annotation is SecretStr or any(is_secret(arg) for arg in get_args(annotation))


def _secrets_in(value: Any) -> Iterator[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secrets_in(item)


def _describe(group: type[Group], exc: ValidationError) -> list[str]:
    """One line per error, named by the variable; secrets are never echoed back."""
    by_name = {group.env_name(field): field for field in group.model_fields} | {f: f for f in group.model_fields}
    lines = []
    for err in exc.errors():
        located = str(err["loc"][0]) if err["loc"] else ""
        field = by_name.get(located)
        name = group.env_name(field) if field else located or group.__name__
        message = str(err["msg"]).removeprefix("Value error, ")
        secret = field is None or is_secret(group.model_fields[field].annotation)
        lines.append(f"{name}: {message}" if secret else f"{name}: {message} (got {err.get('input')!r})")
    return lines
