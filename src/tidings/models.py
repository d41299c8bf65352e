"""Every table of Tidings, in one place (SQLAlchemy 2 typed declarative).

Every tenant table carries ``org_id`` and every query filters on it (see ``tenancy.py``), which is
also what lets a sharded deployment distribute by organization. Alembic migrations are the only way
the schema is made; ``tests/test_migrations.py`` checks that these models and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    column,
    func,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tidings.timeutil import utcnow

# Stable constraint names on SQLite and PostgreSQL alike, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; ``timestamptz`` on PostgreSQL, naive UTC text on SQLite.

    SQLite has no time zone type, so values are normalised to naive UTC on the way in (they then sort
    and compare correctly as text) and marked UTC again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, nullable=False)


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


def _org_fk() -> Mapped[str]:
    return mapped_column(
        String(32), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    # Maintained with every contact created or deleted, in the same transaction (migration 0007),
    # so a list of the organization's contacts never counts them.
    contact_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class User(Base):
    """A dashboard user. Emails are unique across the installation: login asks for no organization."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # owner | member
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class LoginThrottle(Base):
    """Failed dashboard logins per email typed, whether or not an account has it (migration
    0008): kept on the user, the lockout answered 429 for accounts only and so told which
    emails have one. ``email_key`` is a SHA-256 of the address as logins match it."""

    __tablename__ = "login_throttles"

    email_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class DashboardSession(Base):
    """A server-side login session; the cookie holds a random token, the table only its hash."""

    __tablename__ = "dashboard_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    org_id: Mapped[str] = _org_fk()
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[datetime] = _created()


class ApiKey(Base):
    """An API key. Only the SHA-256 of the secret is stored (the secret has 256 bits of entropy, so a
    fast hash is enough); ``prefix`` is the secret's first characters, shown to tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scopes: Mapped[str] = mapped_column(Text, nullable=False)  # space-separated
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def alembic_compares(item: Any, dialect_name: str) -> bool:
    """Whether autogenerate (and the migration test) should compare a schema item on this backend.

    Not those that do not exist here (``ddl_if(dialect=...)`` limits some indexes to PostgreSQL),
    nor expression indexes, whose text PostgreSQL gives back rewritten (casts, parentheses,
    ``E'\\n'``) so that no comparison of text can match; their own tests check that the queries
    written for them use them.
    """
    if getattr(item, "name", None) in EXPRESSION_INDEXES:
        return False
    condition = getattr(item, "_ddl_if", None)
    if condition is None or condition.dialect is None:
        return True
    dialects = (condition.dialect,) if isinstance(condition.dialect, str) else condition.dialect
    return dialect_name in dialects


# ``search`` matches name, email and phone, each case-insensitively by substring. The three are
# searched as one text, joined by SEARCH_SEPARATOR, under ONE pg_trgm GIN index: an import writes
# each distinct trigram of a contact once instead of once per column (name and email share most
# of theirs), and a search plans and scans one index instead of a BitmapOr of three (migration
# 0004 has the figures). A term without the separator cannot match across two fields; the
# index's candidates for a term with one are checked field by field
# (``contacts.service.search_filter``). SQLite has no such index.
SEARCH_SEPARATOR = "\n"
SEARCH_INDEX = "ix_contacts_search_trgm"
EXPRESSION_INDEXES = frozenset({SEARCH_INDEX})


def table_columns(*names: str) -> SimpleNamespace:
    """Columns by name, for an expression index declared in ``__table_args__`` (the mapped
    columns do not exist yet there)."""
    return SimpleNamespace(**{name: column(name) for name in names})


def contact_search_text(columns: Any) -> ColumnElement[str]:
    """Name, email and phone joined by ``SEARCH_SEPARATOR``, absent fields as empty strings.

    The constants are SQL literals, not bound parameters: PostgreSQL uses an expression index only
    for a query whose expression is the same, constants included."""
    blank = literal_column("''", String)
    separator = literal_column(f"'{SEARCH_SEPARATOR}'", String)
    return (
        func.coalesce(columns.name, blank)
        + separator
        + func.coalesce(columns.email, blank)
        + separator
        + func.coalesce(columns.phone, blank)
    )


def _address_key(field: str) -> tuple[UniqueConstraint, Index]:
    """One contact per ``field`` (email or phone) per organization; contacts without one coexist.

    SQLite: a unique constraint (NULLs are distinct). PostgreSQL: a unique index of only the
    contacts that have the address (migration 0005): a contact without one (a phone-less import
    row) costs no index entry, ~25 ms of a 10,000-contact import."""
    return (
        UniqueConstraint("org_id", field).ddl_if(dialect="sqlite"),
        Index(
            f"uq_contacts_org_id_{field}_not_null",
            "org_id",
            field,
            unique=True,
            postgresql_where=column(field).is_not(None),
        ).ddl_if(dialect="postgresql"),
    )


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        *_address_key("email"),
        *_address_key("phone"),
        # Contact lists are ordered newest first (``created_at DESC, id``): read backwards, this
        # index yields that order (an incremental sort orders the rare equal timestamps by id),
        # so a page is the first entries of an index range, not a sort of the whole table.
        Index("ix_contacts_org_id_created_at", "org_id", "created_at"),
        Index(
            SEARCH_INDEX,
            contact_search_text(table_columns("name", "email", "phone")).label("search_text"),
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # ``metadata`` is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, nullable=False, default=dict
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Audience(Base):
    __tablename__ = "audiences"
    __table_args__ = (
        UniqueConstraint("org_id", "slug"),
        Index("ix_audiences_org_id_created_at", "org_id", "created_at"),
        # The key a membership refers to: an audience together with its organization. A unique
        # index, not a constraint: SQLite adds one without rebuilding the table.
        Index("uq_audiences_id_org_id", "id", "org_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Maintained by every membership change in the same transaction, so listing never counts rows.
    contact_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class AudienceMember(Base):
    __tablename__ = "audience_members"
    __table_args__ = (
        Index("ix_audience_members_contact_id", "contact_id"),
        # (audience, organization) together: a membership can only carry its audience's own
        # organization, and one foreign-key check per row covers both (migration 0003).
        ForeignKeyConstraint(
            ["audience_id", "org_id"], ["audiences.id", "audiences.org_id"], ondelete="CASCADE"
        ),
    )

    audience_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    contact_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = _created()


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("org_id", "slug"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    slug: Mapped[str] = mapped_column(String(200), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)  # email | sms
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("org_id", "address"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    address: Mapped[str] = mapped_column(String(320), nullable=False)  # normalised email or E.164
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = _created()


class Campaign(Base):
    """One send to an audience. The template is snapshotted here, so editing the template after
    scheduling does not change what this campaign delivers."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_org_id_created_at", "org_id", "created_at"),
        Index("ix_campaigns_audience_id_status", "audience_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    # NULL once the audience is deleted: the campaign and its messages stay (migration 0006).
    audience_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("audiences.id", ondelete="SET NULL"), nullable=True
    )
    template_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("templates.id", ondelete="SET NULL"), nullable=True
    )
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    from_address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    template_subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    template_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    template_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject_variants: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    ramp_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    scheduled: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    skipped: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Message(Base):
    """One recipient of one campaign. ``attempt`` is a fencing token: a worker records an outcome only
    while the row still carries the attempt number it claimed, so a worker whose lease expired cannot
    overwrite the result of the worker that reclaimed the message."""

    __tablename__ = "messages"
    __table_args__ = (
        # The worker's claim: due rows by time. Partial on PostgreSQL would be smaller; a plain
        # composite index works on both backends.
        Index("ix_messages_status_scheduled_at", "status", "scheduled_at"),
        Index("ix_messages_campaign_id_status", "campaign_id", "status"),
        Index("ix_messages_org_id_contact_id", "org_id", "contact_id"),
        Index("ix_messages_org_id_created_at", "org_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    campaign_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    contact_id: Mapped[str] = mapped_column(String(32), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    # scheduled | sending | sent | failed | cancelled | suppressed
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, nullable=False, default=dict
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_id_created_at", "org_id", "created_at"),
        Index("ix_audit_events_org_id_action", "org_id", "action"),
        Index("ix_audit_events_org_id_target_id", "org_id", "target_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org_fk()
    actor_type: Mapped[str] = mapped_column(
        String(16), nullable=False
    )  # user | api_key | internal | cli
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = _created()


class IdempotencyKey(Base):
    """A claimed ``Idempotency-Key``. ``owner`` is the caller the route admitted (``key:<id>``,
    ``user:<id>`` or ``internal``: ``deps.idempotency_owner``), so two callers can never replay
    each other's responses; ``response_body`` is null while the first request is still running."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = _created()
