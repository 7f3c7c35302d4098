"""Derived state kept by triggers: the DDL that keeps `subscription_totals` and `invoice_recovery_daily` exact
on SQLite (row triggers) and PostgreSQL (statement-level triggers with transition tables).

Not in the Alembic migrations: autogenerate cannot express triggers, and they are installed (or replaced
when not current) by `ensure_derived_state`, which lib/db.migrate runs after every migration. The tables
themselves are declared in lib/models.py. Constants only: no value here comes from input.
"""

from __future__ import annotations

import os
from typing import Any

# --- derived state: subscription_totals, kept by triggers -----------------------------------------------

TOTALS_TRIGGERS = ("trg_subscription_totals_ins", "trg_subscription_totals_del", "trg_subscription_totals_upd")
_ADD = ("INSERT INTO subscription_totals (status, currency, subscriptions, mrr) "
        "VALUES (NEW.status, coalesce(NEW.currency, ''), 1, NEW.mrr) ON CONFLICT (status, currency) DO UPDATE "
        "SET subscriptions = subscription_totals.subscriptions + 1, mrr = subscription_totals.mrr + excluded.mrr;")
_SUB = ("UPDATE subscription_totals SET subscriptions = subscriptions - 1, mrr = mrr - OLD.mrr "
        "WHERE status = OLD.status AND currency = coalesce(OLD.currency, '');")
_CHANGED = "OLD.status IS DISTINCT FROM NEW.status OR OLD.currency IS DISTINCT FROM NEW.currency " \
           "OR OLD.mrr IS DISTINCT FROM NEW.mrr"
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER trg_subscription_totals_ins AFTER INSERT ON subscriptions BEGIN {_ADD} END",
    f"CREATE TRIGGER trg_subscription_totals_del AFTER DELETE ON subscriptions BEGIN {_SUB} END",
    f"CREATE TRIGGER trg_subscription_totals_upd AFTER UPDATE OF status, currency, mrr ON subscriptions "
    f"WHEN {_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN {_SUB} {_ADD} END",
)
# PostgreSQL: one statement-level trigger per event, applying one aggregated delta per (status, currency) for
# the whole statement from its transition tables (a 100-row page upsert: one small upsert into the totals, not
# 100 plpgsql calls of ~6.5 µs each). Transition tables forbid `UPDATE OF <columns>` and a WHEN on the rows,
# so the update trigger sees every updated row and nets old against new: unchanged rows cancel out (HAVING).
# `INSERT … ON CONFLICT DO UPDATE` (the sync's upsert) fires both: inserted rows are in the INSERT trigger's
# new table only, updated ones in the UPDATE trigger's tables only, rows the conflict WHERE skipped in neither.
# ORDER BY: each statement locks its totals rows in one order, as concurrent writers do.
_PG_DELTA = ("INSERT INTO subscription_totals (status, currency, subscriptions, mrr) "
             "SELECT status, currency, sum(n), sum(m) FROM ({rows}) AS d (status, currency, n, m) "
             "GROUP BY status, currency HAVING sum(n) <> 0 OR sum(m) <> 0 ORDER BY status, currency "
             "ON CONFLICT (status, currency) DO UPDATE SET subscriptions = subscription_totals.subscriptions "
             "+ excluded.subscriptions, mrr = subscription_totals.mrr + excluded.mrr;")
_PG_PLUS = "SELECT status, coalesce(currency, ''), 1, mrr FROM new_subscriptions"
_PG_MINUS = "SELECT status, coalesce(currency, ''), -1, -mrr FROM old_subscriptions"
_PG_EVENTS = (  # (trigger, event, REFERENCING, rows whose delta it applies)
    ("trg_subscription_totals_ins", "INSERT", "NEW TABLE AS new_subscriptions", _PG_PLUS),
    ("trg_subscription_totals_del", "DELETE", "OLD TABLE AS old_subscriptions", _PG_MINUS),
    ("trg_subscription_totals_upd", "UPDATE", "OLD TABLE AS old_subscriptions NEW TABLE AS new_subscriptions",
     f"{_PG_PLUS} UNION ALL {_PG_MINUS}"),
)


def _pg_statement_triggers(table: str, events: tuple[tuple[str, str, str, str], ...], delta: str) -> tuple[str, ...]:
    """PostgreSQL DDL for derived state: per (trigger, event, REFERENCING, rows), a function applying `delta`
    (with `{rows}`, the statement's signed rows from its transition tables) and an AFTER … FOR EACH STATEMENT
    trigger on `table` that runs it. SET search_path FROM CURRENT: the function always writes this schema's
    tables. Constants only."""
    return tuple(
        ddl
        for name, event, referencing, rows in events
        for ddl in (
            f"CREATE OR REPLACE FUNCTION {name.removeprefix('trg_')}() RETURNS trigger LANGUAGE plpgsql "
            f"SET search_path FROM CURRENT AS $$ BEGIN {delta.format(rows=rows)} RETURN NULL; END $$",
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {referencing} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {name.removeprefix('trg_')}()",
        )
    )


_PG_TRIGGERS = _pg_statement_triggers("subscriptions", _PG_EVENTS, _PG_DELTA)
_PG_OLD_FUNCTION = "subscription_totals_apply"  # the FOR EACH ROW version's function (before migration 0002)


def _triggers_present(connection: Any, table: str, names: tuple[str, ...]) -> bool:
    """Whether `table` in this schema has exactly the current derived-state triggers `names`: on SQLite the row
    triggers of those names; on PostgreSQL statement-level ones with transition tables (a database migrated
    before 0002 has row-level totals triggers of the same names: not current, so `ensure_derived_state`
    replaces them). `names` share one prefix; both come from the constants above."""
    from sqlalchemy import text

    prefix = os.path.commonprefix(list(names))
    if connection.dialect.name == "sqlite":
        stmt = text("SELECT name, 1 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table "
                    "AND substr(name, 1, length(:prefix)) = :prefix")
    else:  # tgtype bit 0: FOR EACH ROW; tgnewtable/tgoldtable: the REFERENCING transition tables
        stmt = text("SELECT t.tgname, (t.tgtype & 1) = 0 AND (t.tgnewtable IS NOT NULL OR t.tgoldtable IS NOT NULL) "
                    "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname = :table "
                    "AND c.relnamespace = to_regnamespace(current_schema())::oid "
                    "AND left(t.tgname, length(:prefix)) = :prefix")
    found = {name: bool(current) for name, current in connection.execute(stmt, {"table": table, "prefix": prefix})}
    return found == dict.fromkeys(names, True)


def _drop_triggers(connection: Any, table: str, names: tuple[str, ...]) -> None:
    from sqlalchemy import text

    on = "" if connection.dialect.name == "sqlite" else f" ON {table}"
    for name in names:
        connection.execute(text(f"DROP TRIGGER IF EXISTS {name}{on}"))


def _ensure_subscription_totals(connection: Any) -> bool:
    """Install the subscription_totals triggers and rebuild the table if they are missing or not current."""
    from sqlalchemy import text

    if _triggers_present(connection, "subscriptions", TOTALS_TRIGGERS):
        return False
    _drop_triggers(connection, "subscriptions", TOTALS_TRIGGERS)
    if connection.dialect.name == "sqlite":
        ddls: tuple[str, ...] = _SQLITE_TRIGGERS
    else:  # the row-level version's function goes with its triggers
        ddls = (f"DROP FUNCTION IF EXISTS {_PG_OLD_FUNCTION}()", *_PG_TRIGGERS)
    for ddl in ddls:
        connection.execute(text(ddl))
    connection.execute(text("DELETE FROM subscription_totals"))
    connection.execute(text(
        "INSERT INTO subscription_totals (status, currency, subscriptions, mrr) SELECT status, "
        "coalesce(currency, ''), count(*), coalesce(sum(mrr), 0) FROM subscriptions "
        "GROUP BY status, coalesce(currency, '')"))
    return True


# --- derived state: invoice_recovery_daily, kept by triggers ----------------------------------------------
# The same rules as lib/queries/failed.recovery had when it summed `invoices`. `{r}` is the row: NEW., OLD. or ''
# (a transition table's columns). RECOVERED implies FAILED, so FAILED alone says whether a row contributes.

# v2: with the 'recovered_cohort' kind. New names, so a database holding the first version's triggers (named
# RECOVERY_TRIGGERS_V1) is seen as not current, and `_ensure_invoice_recovery` replaces them and rebuilds.
RECOVERY_TRIGGERS = ("trg_invoice_recovery_v2_ins", "trg_invoice_recovery_v2_del", "trg_invoice_recovery_v2_upd")
RECOVERY_TRIGGERS_V1 = ("trg_invoice_recovery_daily_ins", "trg_invoice_recovery_daily_del",
                        "trg_invoice_recovery_daily_upd")
# (created day or paid_at day, kind, amount column, condition) of each kind an invoice may count in
_R_KINDS = (("created", "failed", "amount_due", "F"), ("paid_at", "recovered", "amount_paid", "R"),
            ("created", "recovered_cohort", "amount_paid", "R"))
_R_FAILED = ("({r}status IN ('open', 'uncollectible') AND {r}attempt_count > 0 "
             "OR {r}status = 'paid' AND {r}attempt_count > 1)")
_R_RECOVERED = "({r}status = 'paid' AND {r}attempt_count > 1 AND {r}paid_at IS NOT NULL)"
# the columns a contribution depends on (SQLite's UPDATE OF list and its "did anything change" test)
_R_COLUMNS = ("status", "attempt_count", "currency", "created", "amount_due", "amount_paid", "paid_at")


def _utc_day_sql(dialect: str, column: str) -> str:
    """UTC day of a datetime column, as lib/queries grouped by it: SQLite stores UTC text
    'YYYY-MM-DD HH:MM:SS.ffffff' (the date is its first 10 characters); PostgreSQL has timestamptz."""
    if dialect == "sqlite":
        return f"substr({column}, 1, 10)"
    return f"(({column}) AT TIME ZONE 'UTC')::date"


# SQLite: row triggers whose WHEN skips invoices that contribute nothing before or after (most are paid at the
# first attempt): they cost one WHEN evaluation. A contributing row adds with an upsert and removes with an
# UPDATE of the row its addition created; each statement below is a no-op unless its WHERE holds.
_R_SQLITE_ADD = (
    "INSERT INTO invoice_recovery_daily (day, currency, kind, invoices, amount) SELECT {day}, NEW.currency, "
    "'{kind}', 1, NEW.{amount} WHERE {cond} ON CONFLICT (day, currency, kind) DO UPDATE SET "
    "invoices = invoice_recovery_daily.invoices + 1, amount = invoice_recovery_daily.amount + excluded.amount;")
_R_SQLITE_SUB = (
    "UPDATE invoice_recovery_daily SET invoices = invoices - 1, amount = amount - OLD.{amount} "
    "WHERE day = {day} AND currency = OLD.currency AND kind = '{kind}' AND {cond};")


def _r_sqlite(template: str, r: str) -> str:
    """Both kinds' statements for one row (NEW or OLD)."""
    return "".join(template.format(day=_utc_day_sql("sqlite", f"{r}.{column}"), kind=kind, amount=amount,
                                   cond=_r_cond(cond).format(r=f"{r}."))
                   for column, kind, amount, cond in _R_KINDS)


def _r_cond(code: str) -> str:
    return _R_FAILED if code == "F" else _R_RECOVERED


_R_SQLITE_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _R_COLUMNS)
_R_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER trg_invoice_recovery_v2_ins AFTER INSERT ON invoices WHEN {_R_FAILED.format(r='NEW.')} "
    f"BEGIN {_r_sqlite(_R_SQLITE_ADD, 'NEW')} END",
    f"CREATE TRIGGER trg_invoice_recovery_v2_del AFTER DELETE ON invoices WHEN {_R_FAILED.format(r='OLD.')} "
    f"BEGIN {_r_sqlite(_R_SQLITE_SUB, 'OLD')} END",
    f"CREATE TRIGGER trg_invoice_recovery_v2_upd AFTER UPDATE OF {', '.join(_R_COLUMNS)} ON invoices "
    f"WHEN ({_R_FAILED.format(r='OLD.')} OR {_R_FAILED.format(r='NEW.')}) AND ({_R_SQLITE_CHANGED}) "
    f"BEGIN {_r_sqlite(_R_SQLITE_SUB, 'OLD')} {_r_sqlite(_R_SQLITE_ADD, 'NEW')} END",
)
# PostgreSQL: statement-level triggers with transition tables, as for subscription_totals: one aggregated delta
# per (day, currency, kind) for the whole statement, applied in key order (concurrent writers lock the summary
# rows in one order); an update's unchanged rows net to zero (HAVING).
_R_PG_DELTA = ("INSERT INTO invoice_recovery_daily (day, currency, kind, invoices, amount) "
               "SELECT day, currency, kind, sum(n), sum(a) FROM ({rows}) AS d (day, currency, kind, n, a) "
               "GROUP BY day, currency, kind HAVING sum(n) <> 0 OR sum(a) <> 0 ORDER BY day, currency, kind "
               "ON CONFLICT (day, currency, kind) DO UPDATE SET invoices = invoice_recovery_daily.invoices "
               "+ excluded.invoices, amount = invoice_recovery_daily.amount + excluded.amount;")


def _r_pg_rows(table: str, sign: str) -> str:
    """A transition table's contributions: (day, currency, kind, ±1, ±amount) per kind it counts in."""
    return " UNION ALL ".join(
        f"SELECT {_utc_day_sql('postgresql', column)}, currency, '{kind}', {sign}1, {sign}{amount} "  # noqa: S608
        f"FROM {table} WHERE {_r_cond(cond).format(r='')}" for column, kind, amount, cond in _R_KINDS)


_R_PG_EVENTS = (  # (trigger, event, REFERENCING, rows whose delta it applies)
    ("trg_invoice_recovery_v2_ins", "INSERT", "NEW TABLE AS new_invoices", _r_pg_rows("new_invoices", "")),
    ("trg_invoice_recovery_v2_del", "DELETE", "OLD TABLE AS old_invoices", _r_pg_rows("old_invoices", "-")),
    ("trg_invoice_recovery_v2_upd", "UPDATE", "OLD TABLE AS old_invoices NEW TABLE AS new_invoices",
     f"{_r_pg_rows('new_invoices', '')} UNION ALL {_r_pg_rows('old_invoices', '-')}"),
)
_R_PG_TRIGGERS = _pg_statement_triggers("invoices", _R_PG_EVENTS, _R_PG_DELTA)


def rebuild_invoice_recovery_sql(dialect: str) -> str:
    """invoice_recovery_daily from a full GROUP BY over `invoices`: what the triggers keep (also the tests'
    reference). Three ranges of ix_invoices_status_attempt, each read from the index alone."""
    created, paid = _utc_day_sql(dialect, "created"), _utc_day_sql(dialect, "paid_at")
    return (
        "INSERT INTO invoice_recovery_daily (day, currency, kind, invoices, amount) "  # noqa: S608 — constants
        "SELECT day, currency, kind, count(*), sum(amount) FROM ("
        f"SELECT {created} AS day, currency, 'failed' AS kind, amount_due AS amount FROM invoices "
        "WHERE status IN ('open', 'uncollectible') AND attempt_count > 0 "
        f"UNION ALL SELECT {created}, currency, 'failed', amount_due FROM invoices "
        "WHERE status = 'paid' AND attempt_count > 1 "
        f"UNION ALL SELECT {paid}, currency, 'recovered', amount_paid FROM invoices "
        "WHERE status = 'paid' AND attempt_count > 1 AND paid_at IS NOT NULL "
        f"UNION ALL SELECT {created}, currency, 'recovered_cohort', amount_paid FROM invoices "
        "WHERE status = 'paid' AND attempt_count > 1 AND paid_at IS NOT NULL"
        ") AS r GROUP BY day, currency, kind")


def _ensure_invoice_recovery(connection: Any) -> bool:
    """Install the invoice_recovery_daily triggers and rebuild the table if they are missing."""
    from sqlalchemy import text

    if _triggers_present(connection, "invoices", RECOVERY_TRIGGERS):
        return False
    dialect = connection.dialect.name
    _drop_triggers(connection, "invoices", RECOVERY_TRIGGERS + RECOVERY_TRIGGERS_V1)
    if dialect != "sqlite":  # the first version's functions go with its triggers
        for name in RECOVERY_TRIGGERS_V1:
            connection.execute(text(f"DROP FUNCTION IF EXISTS {name.removeprefix('trg_')}()"))
    for ddl in _R_SQLITE_TRIGGERS if dialect == "sqlite" else _R_PG_TRIGGERS:
        connection.execute(text(ddl))
    connection.execute(text("DELETE FROM invoice_recovery_daily"))
    connection.execute(text(rebuild_invoice_recovery_sql(dialect)))
    return True


def drop_derived_state(connection: Any) -> None:
    """Remove the derived-state triggers (bulk loaders: load, then `ensure_derived_state` rebuilds)."""
    _drop_triggers(connection, "subscriptions", TOTALS_TRIGGERS)
    _drop_triggers(connection, "invoices", RECOVERY_TRIGGERS + RECOVERY_TRIGGERS_V1)


def ensure_derived_state(connection: Any) -> bool:
    """Install the triggers that keep subscription_totals and invoice_recovery_daily exact, and rebuild each
    table whose triggers were missing.

    Runs after every migration (idempotent; lib/db.migrate); also replaces PostgreSQL's row-level totals
    triggers of a database migrated before 0002 with the statement-level ones. Creating a trigger locks its
    table against writes until the transaction commits, so the rebuild and the triggers see the same rows.
    Returns whether it rebuilt anything.
    """
    totals = _ensure_subscription_totals(connection)
    recovery = _ensure_invoice_recovery(connection)
    return totals or recovery
