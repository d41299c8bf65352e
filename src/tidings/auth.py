"""API keys, scopes, passwords and dashboard sessions: the rules, without HTTP.

``deps.py`` turns these into FastAPI dependencies; the CLI and the dashboard call them directly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import String, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tidings.contacts.normalize import InvalidAddress, normalize_email
from tidings.errors import BadRequest
from tidings.ids import new_id
from tidings.models import ApiKey, DashboardSession, LoginThrottle, User
from tidings.timeutil import utcnow

# Of an organization's or a key's name (their columns' size).
MAX_NAME_LENGTH = 200
RESOURCES = ("audiences", "contacts", "templates", "suppressions", "campaigns")
ALL_SCOPES: tuple[str, ...] = (
    *(f"{verb}:{resource}" for resource in RESOURCES for verb in ("read", "write")),
    "read:audit",
)
KEY_PREFIX = "tid_"
SESSION_TTL = timedelta(days=7)
ROLES = ("owner", "member")

_password_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the organization every query is scoped to, and what they may do."""

    org_id: str
    actor_type: str  # api_key | user | internal | cli
    actor_id: str | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    role: str | None = None  # for dashboard users

    def has_scope(self, scope: str) -> bool:
        """``write:X`` implies ``read:X``."""
        if scope in self.scopes:
            return True
        verb, _, resource = scope.partition(":")
        return verb == "read" and f"write:{resource}" in self.scopes


def parse_scopes(raw: str) -> frozenset[str]:
    """``read:audiences,write:audiences`` or ``all``; unknown scopes are refused, not ignored."""
    if raw.strip() == "all":
        return frozenset(ALL_SCOPES)
    scopes = frozenset(s.strip() for s in raw.replace(" ", ",").split(",") if s.strip())
    if "all" in scopes:
        raise BadRequest("'all' stands alone: give 'all', or a list of scopes without it")
    unknown = sorted(scopes - set(ALL_SCOPES))
    if unknown or not scopes:
        raise BadRequest(
            f"unknown scope(s): {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ALL_SCOPES)} or 'all'"
        )
    return scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session, org_id: str, scopes: frozenset[str], name: str = ""
) -> tuple[ApiKey, str]:
    """Returns the stored key and its secret; the secret exists only in this return value."""
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"key name is longer than {MAX_NAME_LENGTH} characters")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"),
        org_id=org_id,
        name=name,
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=_digest(secret),
        scopes=" ".join(sorted(scopes)),
    )
    session.add(key)
    session.flush()
    return key, secret


def authenticate_api_key(session: Session, secret: str) -> Principal | None:
    """Looks the key up by the hash of the secret (so the lookup leaks nothing about the secret)
    and compares the hashes in constant time. Revoked keys are refused at once."""
    digest = _digest(secret)
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
    if key is None or not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
        return None
    return Principal(
        org_id=key.org_id,
        actor_type="api_key",
        actor_id=key.id,
        scopes=frozenset(key.scopes.split()),
    )


def list_api_keys(session: Session, org_id: str) -> list[ApiKey]:
    """The organization's keys, newest first, revoked ones too (never their secrets)."""
    stmt = (
        select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return list(session.scalars(stmt))


def revoke_api_key(session: Session, org_id: str, key_id: str) -> bool:
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.org_id == org_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_dashboard_session(session: Session, user: User) -> tuple[str, DashboardSession]:
    """Returns the cookie token (only its hash is stored) and the session row with its CSRF token.
    The user's expired sessions are deleted on the way: nothing else ends a session that was
    never logged out of, and each login would otherwise leave a row for ever."""
    session.execute(
        delete(DashboardSession).where(
            DashboardSession.user_id == user.id, DashboardSession.expires_at <= utcnow()
        )
    )
    token = secrets.token_urlsafe(32)
    row = DashboardSession(
        token_hash=_digest(token),
        user_id=user.id,
        org_id=user.org_id,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=utcnow() + SESSION_TTL,
    )
    session.add(row)
    session.flush()
    return token, row


def resolve_dashboard_session(
    session: Session, token: str, now: datetime | None = None
) -> tuple[DashboardSession, User] | None:
    row = session.get(DashboardSession, _digest(token))
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    user = session.get(User, row.user_id)
    if user is None:
        return None
    return row, user


def end_dashboard_session(session: Session, token: str) -> None:
    row = session.get(DashboardSession, _digest(token))
    if row is not None:
        session.delete(row)
        session.flush()


def user_principal(user: User) -> Principal:
    """A dashboard user acts with every scope of their organization; owner-only actions check
    ``role`` on top."""
    return Principal(
        org_id=user.org_id,
        actor_type="user",
        actor_id=user.id,
        scopes=frozenset(ALL_SCOPES),
        role=user.role,
    )


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


MAX_FREE_FAILURES = 3
MAX_LOCK = timedelta(minutes=15)
_DUMMY_HASH = _password_hasher.hash("not-a-real-password")


class LoginFailed(Exception):
    """Wrong email or password; the message never says which."""


class LoginThrottled(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"retry after {retry_after_seconds}s")
        self.retry_after_seconds = retry_after_seconds


def log_in(session: Session, email: str, password: str) -> User:
    """Checks a dashboard login. After ``MAX_FREE_FAILURES`` wrong passwords for an email the
    email is locked for 2, 4, 8 … seconds (at most 15 minutes) per further failure, which slows
    guessing to a crawl without locking the owner out for long. Failures are counted per email
    typed, with an account or without (``LoginThrottle``), and unknown emails cost the same
    argon2 check as known ones, so neither the answers nor their timing tell which emails have
    accounts."""
    try:
        normalized = normalize_email(email)
    except InvalidAddress:
        normalized = None
    key = hashlib.sha256((normalized or email.strip()).lower().encode()).hexdigest()
    now = utcnow()
    throttle = session.get(LoginThrottle, key)
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        raise LoginThrottled(max(1, int((throttle.locked_until - now).total_seconds()) + 1))
    user = user_by_email(session, normalized) if normalized else None
    if not verify_password(user.password_hash if user else _DUMMY_HASH, password) or not user:
        _count_failure(session, key, now)
        raise LoginFailed
    if throttle is not None:
        session.delete(throttle)
        session.flush()
    return user


def user_by_email(session: Session, email: str) -> User | None:
    """The user whose email is ``email`` in any case: ``Owner@`` and ``owner@`` are one mailbox,
    and one person typing either is one user. (Contacts keep an address's case as written; a
    login is not a contact.) An exact spelling wins over another case."""
    stmt = (
        select(User)
        # Both sides folded by the database: PostgreSQL's lower() and Python's differ on İ and
        # a final Σ (and a C-ctype database folds ASCII only).
        .where(func.lower(User.email) == func.lower(literal(email, String)))
        .order_by((User.email != email), User.created_at)
    )
    return session.scalars(stmt).first()


def _count_failure(session: Session, key: str, now: datetime) -> None:
    """One more failure for ``key``, in one statement (two wrong passwords at once both count),
    and the lock it earns; throttles idle for a day are dropped on the way."""
    insert = postgres_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    failures = session.execute(
        insert(LoginThrottle)
        .values(email_key=key, failures=1, locked_until=None, updated_at=now)
        .on_conflict_do_update(
            index_elements=["email_key"],
            set_={"failures": LoginThrottle.failures + 1, "updated_at": now},
        )
        .returning(LoginThrottle.failures)
    ).scalar_one()
    excess = failures - MAX_FREE_FAILURES
    if excess > 0:
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.email_key == key)
            .values(locked_until=now + min(timedelta(seconds=2 ** min(excess, 20)), MAX_LOCK))
        )
    session.execute(delete(LoginThrottle).where(LoginThrottle.updated_at < now - timedelta(days=1)))
