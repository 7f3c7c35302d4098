"""One settings object, read from the environment and `.env`.

Every setting has one name, one default and one line of help, so a bad value
ends in a single clear sentence (`ConfigError`) instead of a traceback.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

from lib.inputs import http_url_problem

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'data' / 'billing.db'}"
SANDBOX_KEY = "sk_test_sandbox"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what to put there."""


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///…` URL (query string dropped); None for other databases and `:memory:`."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def require_sqlite_directory(url: str) -> None:
    """ConfigError when a SQLite DATABASE_URL points into a directory that does not exist.

    Nothing creates it on the fly: a typo in the path would otherwise start an empty cache somewhere else
    and run a full backfill into it. Only the default (`data/billing.db`) has its directory made for it,
    by lib/db.py.
    """
    file = sqlite_file(url)
    if file is None or url == DEFAULT_DATABASE_URL or file.parent.is_dir():
        return
    raise ConfigError(
        f"DATABASE_URL={url!r} points into the directory {str(file.parent)!r}, which does not exist: create "
        f"it first (mkdir -p {file.parent}) or fix the path. It is not created for you, so that a mistyped "
        "path cannot start an empty cache elsewhere."
    )


STRIPE_API_HOST = "api.stripe.com"


@dataclass(frozen=True)
class Settings:
    stripe_api_key: str
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
    database_url: str = DEFAULT_DATABASE_URL
    portal_return_url: str = "http://localhost:8501/"
    portal_configuration_id: str = ""
    cache_stale_after_minutes: int = 60
    stripe_requests_per_second: float = 0.0  # 0 = by key mode: 20 test, 80 live
    merge_external_id_key: str = ""
    roles_file: str = str(ROOT / "roles.toml")
    dashboard_base_url: str = "http://localhost:8501"
    sync_card_concurrency: int = 0  # pass 2: customers whose card lists are fetched at once; 0 = by budget
    worker_interval_seconds: float = 60.0  # `python -m lib worker`: seconds between incremental syncs
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464  # health and Prometheus metrics; 0 = off
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def key_mode(self) -> str:
        """'test' or 'live', from the key prefix (sk_/rk_ + test/live)."""
        return "live" if "_live_" in self.stripe_api_key else "test"

    @property
    def key_hint(self) -> str:
        """What the UI may show of the key: its mode and its last 4 characters, never more."""
        return f"{self.key_mode} …{self.stripe_api_key[-4:]}"

    @property
    def uses_sandbox(self) -> bool:
        """Whether requests go somewhere other than Stripe's API (the local sandbox, a test double): then the
        objects exist only there, and no link may point at Stripe's Dashboard for them. An empty base is the
        SDK's default; `https://api.stripe.com` written out is Stripe too."""
        if not self.stripe_api_base:
            return False
        parts = urlsplit(self.stripe_api_base)
        return not (parts.scheme == "https" and parts.hostname == STRIPE_API_HOST)

    @property
    def stripe_dashboard(self) -> bool:
        """Whether "Open in Stripe" links make sense: only against Stripe's own API (`uses_sandbox` is False)."""
        return not self.uses_sandbox

    @property
    def request_budget(self) -> float:
        """Requests per second the sync and bulk actions may send to Stripe."""
        if self.stripe_requests_per_second > 0:
            return self.stripe_requests_per_second
        return 80.0 if self.key_mode == "live" else 20.0

    @property
    def card_concurrency(self) -> int:
        """Customers whose card lists the sync's pass 2 fetches at once: SYNC_CARD_CONCURRENCY, else the
        request budget per second (enough requests in flight to use it when each one takes up to a second:
        a 429 honoured with `Retry-After: 1` does), between 4 and 64."""
        if self.sync_card_concurrency > 0:
            return self.sync_card_concurrency
        return max(4, min(64, math.ceil(self.request_budget)))

    @property
    def database_kind(self) -> str:
        return "PostgreSQL" if self.database_url.startswith("postgresql") else "SQLite"

    @property
    def dashboard_path(self) -> str:
        """Stripe Dashboard URL prefix for the key's mode (test objects live under /test/)."""
        return "https://dashboard.stripe.com/" + ("" if self.key_mode == "live" else "test/")


def _int(name: str, raw: str, hint: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number: set it to {hint}.") from None


def _float(name: str, raw: str, hint: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number: set it to {hint}.") from None


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: os.environ after loading `.env`) and validate them."""
    if env is None:
        load_dotenv(ROOT / ".env", override=False)
        env = dict(os.environ)
    get = lambda name, default="": (env.get(name) or default).strip()  # noqa: E731

    key = get("STRIPE_API_KEY")
    base = get("STRIPE_API_BASE")
    if not key:
        raise ConfigError(
            "STRIPE_API_KEY is not set: put a restricted key (rk_live_… or rk_test_…) in .env, "
            "or run `make demo` to use the local sandbox."
        )
    if not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        raise ConfigError(
            "STRIPE_API_KEY does not look like a Stripe secret key: it must start with "
            "rk_live_, rk_test_, sk_live_ or sk_test_ (Dashboard → Developers → API keys)."
        )
    if base and not base.startswith(("http://", "https://")):
        raise ConfigError(
            f"STRIPE_API_BASE={base!r} is not a URL: leave it empty for real Stripe, "
            "or set it to the sandbox address, e.g. http://127.0.0.1:12111."
        )
    database_url = get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    if not database_url.startswith(("sqlite:///", "postgresql+psycopg://")):
        shown = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", database_url)  # the message reaches the page
        raise ConfigError(
            f"DATABASE_URL={shown!r} is not supported: use sqlite:///path/to/file.db "
            "or postgresql://user@host:5432/dbname."
        )
    require_sqlite_directory(database_url)
    return_url = get("PORTAL_RETURN_URL", "http://localhost:8501/")
    url_problem = http_url_problem(return_url)
    if url_problem:
        raise ConfigError(f"PORTAL_RETURN_URL={return_url!r} {url_problem} It is the page customers return to "
                          "after the portal.")
    stale = _int("CACHE_STALE_AFTER_MINUTES", get("CACHE_STALE_AFTER_MINUTES", "60"), "minutes, e.g. 60")
    rps = _float("STRIPE_REQUESTS_PER_SECOND", get("STRIPE_REQUESTS_PER_SECOND", "0"), "e.g. 20")
    cards = _int("SYNC_CARD_CONCURRENCY", get("SYNC_CARD_CONCURRENCY", "0"), "a small whole number, e.g. 16")
    interval = _float("WORKER_INTERVAL_SECONDS", get("WORKER_INTERVAL_SECONDS", "60"), "seconds, e.g. 60")
    metrics_port = _int("WORKER_METRICS_PORT", get("WORKER_METRICS_PORT", "9464"), "a TCP port, e.g. 9464 (0 = off)")
    if not 0 <= cards <= 64:
        raise ConfigError(f"SYNC_CARD_CONCURRENCY={cards} is out of range: set it between 1 and 64, or 0 (by "
                          "the request budget).")
    if interval <= 0:
        raise ConfigError(f"WORKER_INTERVAL_SECONDS={interval:g} must be more than 0: set it to seconds, e.g. 60.")
    if not 0 <= metrics_port <= 65535:
        raise ConfigError(f"WORKER_METRICS_PORT={metrics_port} is not a TCP port: use 1-65535, or 0 for none.")
    if stale <= 0 or rps < 0:
        raise ConfigError("CACHE_STALE_AFTER_MINUTES must be > 0 and STRIPE_REQUESTS_PER_SECOND >= 0.")
    return Settings(
        stripe_api_key=key,
        stripe_api_base=base.rstrip("/"),
        stripe_webhook_secret=get("STRIPE_WEBHOOK_SECRET"),
        database_url=database_url,
        portal_return_url=return_url,
        portal_configuration_id=get("PORTAL_CONFIGURATION_ID"),
        cache_stale_after_minutes=stale,
        stripe_requests_per_second=rps,
        merge_external_id_key=get("MERGE_EXTERNAL_ID_KEY"),
        roles_file=get("ROLES_FILE", str(ROOT / "roles.toml")),
        dashboard_base_url=get("DASHBOARD_BASE_URL", "http://localhost:8501").rstrip("/"),
        sync_card_concurrency=cards,
        worker_interval_seconds=interval,
        worker_metrics_host=get("WORKER_METRICS_HOST", "127.0.0.1"),
        worker_metrics_port=metrics_port,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()` after changing the env)."""
    return load_settings()
