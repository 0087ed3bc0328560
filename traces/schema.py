"""The store's schema: the only place in Libra that writes DDL.

Migrations are ordered and recorded in `schema_migrations`; opening a store
applies whatever is missing, each migration in its own transaction
(`traces.migrate`). A migration is never edited once released: change the
schema by appending one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


# Lock tables (migration 9): 'runs' for the ingest writer, 'embeddings' for embedding
# jobs, and one per table written with traces.store.merge.
_LOCKS_9 = ("runs", "embeddings", "feedback", "feedback_history", "job_items", "llm_cache", "scores",
            "score_units", "watch_files")
# also for writers that number versions (max + 1), which would otherwise hand two
# processes the same number
_LOCKS_10 = ("metric_sets", "reward_models")
# for opening a job: two processes starting the same work join one job, not two
_LOCKS_11 = ("jobs",)
_LOCKS_14 = ("step_locators",)  # numbering fitted locators' versions
_LOCKS_15 = ("otlp_spans", "otlp_logs")  # the OTLP receiver's upserts of spans and logs as received
LOCKS = _LOCKS_9 + _LOCKS_10 + _LOCKS_11 + _LOCKS_14 + _LOCKS_15


def _lock_tables(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(stmt for name in names for stmt in (f"CREATE TABLE lock_{name} (n BIGINT NOT NULL)",
                                                     f"INSERT INTO lock_{name} VALUES (0)"))


def _rebuilt(table: str, columns: str, kept: tuple[str, ...]) -> tuple[str, ...]:
    """Statements that rebuild `table` with new `columns` (and key), keeping the `kept` columns' rows."""
    cols = ", ".join(kept)
    return (f"CREATE TABLE {table}_next {columns}",
            f"INSERT INTO {table}_next ({cols}) SELECT {cols} FROM {table}",  # noqa: S608 - fixed names
            f"DROP TABLE {table}",
            f"ALTER TABLE {table}_next RENAME TO {table}")


# What the full-text index reads: each run's steps as one text, in order.
RUN_TEXT = ("SELECT run_id, left(string_agg(coalesce(content, '') || ' ' || coalesce(tool_name, ''), "
            "' ' ORDER BY idx), 20000) FROM steps GROUP BY run_id")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core: runs, steps, feedback, quarantine", (
        """CREATE TABLE runs (
            run_id        VARCHAR PRIMARY KEY,
            native_id     VARCHAR,
            source        VARCHAR NOT NULL,
            format        VARCHAR NOT NULL,
            agent         VARCHAR,
            model         VARCHAR,
            task          VARCHAR,
            started_at    TIMESTAMP,
            ended_at      TIMESTAMP,
            outcome       VARCHAR,
            reward        DOUBLE,
            gold          JSON,
            metadata      JSON,
            content_hash  VARCHAR NOT NULL,
            n_steps       INTEGER NOT NULL,
            ingested_at   TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE steps (
            run_id        VARCHAR NOT NULL,
            idx           INTEGER NOT NULL,
            kind          VARCHAR NOT NULL,
            actor         VARCHAR,
            tool_name     VARCHAR,
            tool_args     JSON,
            content       VARCHAR,
            span_id       VARCHAR,
            parent_id     VARCHAR,
            started_at    TIMESTAMP,
            ended_at      TIMESTAMP,
            input_tokens  BIGINT,
            output_tokens BIGINT,
            is_error      BOOLEAN NOT NULL,
            metadata      JSON
        )""",
        """CREATE TABLE feedback (
            feedback_id   VARCHAR PRIMARY KEY,
            run_id        VARCHAR NOT NULL,
            steps         INTEGER[],
            author        VARCHAR NOT NULL,
            text          VARCHAR NOT NULL,
            rating        DOUBLE,
            origin        VARCHAR NOT NULL,
            created_at    TIMESTAMP NOT NULL,
            edited_at     TIMESTAMP,
            deleted_at    TIMESTAMP,
            metadata      JSON
        )""",
        "CREATE SEQUENCE quarantine_seq",
        """CREATE TABLE quarantine (
            id            BIGINT PRIMARY KEY DEFAULT nextval('quarantine_seq'),
            source        VARCHAR NOT NULL,
            format        VARCHAR,
            line          BIGINT,
            byte_offset   BIGINT,
            field         VARCHAR,
            reason        VARCHAR NOT NULL,
            raw           VARCHAR,
            records       INTEGER NOT NULL,
            ingested_at   TIMESTAMP NOT NULL
        )""",
        "CREATE INDEX steps_run ON steps (run_id)",
        "CREATE INDEX runs_hash ON runs (content_hash)",
        "CREATE INDEX feedback_run ON feedback (run_id)",
    )),
    Migration(2, "llm calls and cache, embeddings, jobs, scores", (
        """CREATE TABLE llm_calls (
            call_id        VARCHAR PRIMARY KEY,
            job_id         VARCHAR,
            item_key       VARCHAR,
            purpose        VARCHAR NOT NULL,
            model          VARCHAR NOT NULL,
            request_hash   VARCHAR NOT NULL,
            status         VARCHAR NOT NULL,
            error          VARCHAR,
            input_tokens   BIGINT NOT NULL,
            output_tokens  BIGINT NOT NULL,
            cache_creation_input_tokens BIGINT NOT NULL,
            cache_read_input_tokens     BIGINT NOT NULL,
            cost_usd       DOUBLE NOT NULL,
            latency_ms     DOUBLE,
            attempts       INTEGER NOT NULL,
            batch          BOOLEAN NOT NULL,
            created_at     TIMESTAMP NOT NULL
        )""",
        "CREATE INDEX llm_calls_job ON llm_calls (job_id)",
        """CREATE TABLE llm_cache (
            request_hash   VARCHAR PRIMARY KEY,
            model          VARCHAR NOT NULL,
            purpose        VARCHAR NOT NULL,
            response       JSON NOT NULL,
            created_at     TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE embeddings (
            model          VARCHAR NOT NULL,
            content_hash   VARCHAR NOT NULL,
            vector         FLOAT[] NOT NULL,
            created_at     TIMESTAMP NOT NULL,
            PRIMARY KEY (model, content_hash)
        )""",
        """CREATE TABLE jobs (
            job_id         VARCHAR PRIMARY KEY,
            kind           VARCHAR NOT NULL,
            params_hash    VARCHAR NOT NULL,
            params         JSON,
            status         VARCHAR NOT NULL,
            max_cost       DOUBLE,
            cost_usd       DOUBLE NOT NULL DEFAULT 0,
            items_total    INTEGER NOT NULL DEFAULT 0,
            items_done     INTEGER NOT NULL DEFAULT 0,
            items_failed   INTEGER NOT NULL DEFAULT 0,
            error          VARCHAR,
            started_at     TIMESTAMP NOT NULL,
            ended_at       TIMESTAMP
        )""",
        """CREATE TABLE job_items (
            job_id         VARCHAR NOT NULL,
            item_key       VARCHAR NOT NULL,
            status         VARCHAR NOT NULL,
            error          VARCHAR,
            updated_at     TIMESTAMP NOT NULL,
            PRIMARY KEY (job_id, item_key)
        )""",
        """CREATE TABLE scores (
            run_id          VARCHAR NOT NULL,
            metric_set_id   VARCHAR NOT NULL,
            metric_set_version INTEGER NOT NULL,
            metric_id       VARCHAR NOT NULL,
            value           TINYINT NOT NULL,
            evidence        INTEGER[],
            reason          VARCHAR,
            confidence      DOUBLE,
            backend         VARCHAR NOT NULL,
            backend_version VARCHAR NOT NULL,
            job_id          VARCHAR,
            created_at      TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, metric_set_id, metric_set_version, metric_id, backend)
        )""",
        "CREATE INDEX scores_metric ON scores (metric_set_id, metric_id)",
    )),
    Migration(3, "aspects and versioned metric sets", (
        """CREATE TABLE aspects (
            aspect_id      VARCHAR PRIMARY KEY,
            feedback_id    VARCHAR NOT NULL,
            run_id         VARCHAR NOT NULL,
            backend        VARCHAR NOT NULL,
            idx            INTEGER NOT NULL,
            bullet         VARCHAR NOT NULL,
            behaviour      VARCHAR NOT NULL,
            sign           TINYINT NOT NULL,
            steps          INTEGER[],
            steps_given    BOOLEAN NOT NULL,
            focus          VARCHAR,
            metadata       JSON,
            created_at     TIMESTAMP NOT NULL
        )""",
        "CREATE INDEX aspects_feedback ON aspects (feedback_id, backend)",
        """CREATE TABLE metric_sets (
            set_id         VARCHAR NOT NULL,
            version        INTEGER NOT NULL,
            name           VARCHAR NOT NULL,
            status         VARCHAR NOT NULL,
            backend        VARCHAR,
            provenance     JSON,
            created_at     TIMESTAMP NOT NULL,
            created_by     VARCHAR,
            approved_by    VARCHAR,
            approved_at    TIMESTAMP,
            note           VARCHAR,
            PRIMARY KEY (set_id, version)
        )""",
        """CREATE TABLE metric_defs (
            set_id         VARCHAR NOT NULL,
            version        INTEGER NOT NULL,
            position       INTEGER NOT NULL,
            metric_id      VARCHAR NOT NULL,
            name           VARCHAR NOT NULL,
            explanation    VARCHAR NOT NULL,
            good           JSON NOT NULL,
            bad            JSON NOT NULL,
            scope          VARCHAR NOT NULL,
            kind           VARCHAR NOT NULL,
            metadata       JSON,
            PRIMARY KEY (set_id, version, metric_id)
        )""",
    )),
    Migration(4, "accounts, feedback history, annotation queues, run search text", (
        """CREATE TABLE users (
            username       VARCHAR PRIMARY KEY,
            display_name   VARCHAR,
            email          VARCHAR,
            role           VARCHAR NOT NULL,
            password_hash  VARCHAR,
            disabled       BOOLEAN NOT NULL DEFAULT false,
            created_at     TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE feedback_history (
            feedback_id    VARCHAR NOT NULL,
            revision       INTEGER NOT NULL,
            action         VARCHAR NOT NULL,
            text           VARCHAR,
            rating         DOUBLE,
            steps          INTEGER[],
            edited_by      VARCHAR NOT NULL,
            edited_at      TIMESTAMP NOT NULL,
            PRIMARY KEY (feedback_id, revision)
        )""",
        """CREATE TABLE queues (
            queue_id       VARCHAR PRIMARY KEY,
            name           VARCHAR NOT NULL,
            k              INTEGER NOT NULL,
            filter         JSON,
            created_by     VARCHAR NOT NULL,
            created_at     TIMESTAMP NOT NULL,
            closed         BOOLEAN NOT NULL DEFAULT false
        )""",
        """CREATE TABLE queue_items (
            queue_id       VARCHAR NOT NULL,
            run_id         VARCHAR NOT NULL,
            position       INTEGER NOT NULL,
            PRIMARY KEY (queue_id, run_id)
        )""",
        """CREATE TABLE queue_assignments (
            queue_id       VARCHAR NOT NULL,
            run_id         VARCHAR NOT NULL,
            username       VARCHAR NOT NULL,
            status         VARCHAR NOT NULL,
            assigned_at    TIMESTAMP NOT NULL,
            done_at        TIMESTAMP,
            PRIMARY KEY (queue_id, run_id, username)
        )""",
        """CREATE TABLE run_text (
            run_id         VARCHAR PRIMARY KEY,
            text           VARCHAR NOT NULL
        )""",
        "INSERT INTO run_text " + RUN_TEXT,
        "CREATE INDEX runs_started ON runs (started_at)",
    )),
    Migration(5, "pipa criteria units, versioned reward models", (
        # per-unit verdicts of step/call/reply-scoped criteria; the run-level row in
        # scores carries the pass rate over its units
        """CREATE TABLE score_units (
            run_id          VARCHAR NOT NULL,
            metric_set_id   VARCHAR NOT NULL,
            metric_set_version INTEGER NOT NULL,
            metric_id       VARCHAR NOT NULL,
            backend         VARCHAR NOT NULL,
            unit            INTEGER NOT NULL,
            value           TINYINT NOT NULL,
            reason          VARCHAR,
            PRIMARY KEY (run_id, metric_set_id, metric_set_version, metric_id, backend, unit)
        )""",
        "ALTER TABLE scores ADD COLUMN rate DOUBLE",
        """CREATE TABLE reward_models (
            model_id        VARCHAR PRIMARY KEY,
            name            VARCHAR NOT NULL,
            version         INTEGER NOT NULL,
            kind            VARCHAR NOT NULL,
            data_hash       VARCHAR NOT NULL,
            params          JSON,
            metrics         JSON,
            path            VARCHAR,
            created_at      TIMESTAMP NOT NULL,
            UNIQUE (name, version)
        )""",
    )),
    Migration(6, "watched files, scheduled job runs, alerts", (
        # a watched file is known by device and inode, so a rename (rotation) keeps its place
        """CREATE TABLE watch_files (
            file_key        VARCHAR PRIMARY KEY,
            path            VARCHAR NOT NULL,
            committed       BIGINT NOT NULL,
            head            VARCHAR,
            done_traces     JSON,
            updated_at      TIMESTAMP NOT NULL
        )""",
        """CREATE TABLE schedule_runs (
            run_no          BIGINT PRIMARY KEY,
            job             VARCHAR NOT NULL,
            action          VARCHAR NOT NULL,
            started_at      TIMESTAMP NOT NULL,
            ended_at        TIMESTAMP,
            status          VARCHAR NOT NULL,
            runs_ingested   INTEGER NOT NULL DEFAULT 0,
            runs_scored     INTEGER NOT NULL DEFAULT 0,
            cost_usd        DOUBLE NOT NULL DEFAULT 0,
            alerts          INTEGER NOT NULL DEFAULT 0,
            errors          VARCHAR,
            detail          JSON
        )""",
        """CREATE TABLE alerts (
            alert_id        VARCHAR PRIMARY KEY,
            rule            VARCHAR NOT NULL,
            metric_set_id   VARCHAR NOT NULL,
            metric_id       VARCHAR NOT NULL,
            agent           VARCHAR,
            value           DOUBLE,
            threshold       DOUBLE NOT NULL,
            runs            INTEGER NOT NULL,
            window_start    TIMESTAMP,
            raised_at       TIMESTAMP NOT NULL,
            cleared_at      TIMESTAMP,
            job             VARCHAR
        )""",
        "CREATE INDEX scores_created ON scores (created_at)",
    )),
    # Dashboards group a million verdicts by agent and time; carrying both on the
    # verdict row saves a join with runs on every chart.
    Migration(7, "scores carry their run's agent and time", (
        "ALTER TABLE scores ADD COLUMN agent VARCHAR",
        "ALTER TABLE scores ADD COLUMN run_at TIMESTAMP",
        "UPDATE scores SET agent = coalesce(r.agent, r.model, r.format), run_at = coalesce(r.started_at, r.ingested_at) "
        "FROM runs r WHERE r.run_id = scores.run_id",
    )),
    # Distributed scoring: a backlog split into partitions, each committed exactly
    # once together with its verdicts (see metrics/distributed.py).
    Migration(8, "score partitions for distributed scoring", (
        """CREATE TABLE score_partitions (
            job_id          VARCHAR NOT NULL,
            part            INTEGER NOT NULL,
            run_ids         VARCHAR[] NOT NULL,
            metric_set_id   VARCHAR NOT NULL,
            metric_set_version INTEGER NOT NULL,
            backend         VARCHAR NOT NULL,
            status          VARCHAR NOT NULL,
            worker          VARCHAR,
            claimed_at      TIMESTAMP,
            done_at         TIMESTAMP,
            n_scored        INTEGER,
            n_failed        INTEGER,
            error           VARCHAR,
            PRIMARY KEY (job_id, part)
        )""",
    )),
    # Writes that must not run side by side on a lake (which has no keys to stop two
    # processes adding the same run or note) first rewrite a lock table's one row, so
    # they conflict at commit and one is retried (Store.transaction(serialise=...),
    # traces.store.merge). DuckLake detects conflicts per table, hence a table per lock:
    # adding runs does not wait on annotators' notes. Embedding a backlog on many
    # workers is partitioned like scoring.
    Migration(9, "lock tables; embedding partitions; model files in the store", (
        *_lock_tables(_LOCKS_9),
        """CREATE TABLE embed_partitions (
            job_id          VARCHAR NOT NULL,
            part            INTEGER NOT NULL,
            model           VARCHAR NOT NULL,
            run_ids         VARCHAR[] NOT NULL,
            status          VARCHAR NOT NULL,
            worker          VARCHAR,
            claimed_at      TIMESTAMP,
            done_at         TIMESTAMP,
            n_texts         INTEGER,
            n_embedded      INTEGER,
            error           VARCHAR,
            PRIMARY KEY (job_id, part)
        )""",
        # A trained model's files, so a machine that did not train it can load it.
        """CREATE TABLE model_files (
            model_id        VARCHAR PRIMARY KEY,
            archive         BLOB NOT NULL,
            sha256          VARCHAR NOT NULL,
            bytes           BIGINT NOT NULL
        )""",
    )),
    Migration(10, "locks for numbering metric set and reward model versions", _lock_tables(_LOCKS_10)),
    # Crash recovery (traces/recovery.py). An ingest batch records its runs in an intent,
    # committed before the batch and removed after it: an intent left behind names the
    # runs a killed commit may have left half visible. Work that outlives a transaction
    # records its owner (traces/owner.py) and, for jobs, a heartbeat, so the work of a
    # dead process is seen as abandoned and taken over.
    Migration(11, "ingest intents; owners and heartbeats of jobs, items and scheduled runs", (
        """CREATE TABLE ingest_intents (
            intent_id       VARCHAR PRIMARY KEY,
            owner           VARCHAR NOT NULL,
            run_ids         VARCHAR[] NOT NULL,
            steps           BIGINT NOT NULL,
            started_at      TIMESTAMP NOT NULL
        )""",
        "ALTER TABLE jobs ADD COLUMN owner VARCHAR",
        "ALTER TABLE jobs ADD COLUMN heartbeat_at TIMESTAMP",
        "ALTER TABLE job_items ADD COLUMN owner VARCHAR",
        "ALTER TABLE schedule_runs ADD COLUMN owner VARCHAR",
        *_lock_tables(_LOCKS_11),
    )),
    # Every input an ingest read, with its account: records read = stored + quarantined.
    Migration(12, "per-file ingest accounts", (
        """CREATE TABLE ingest_files (
            source          VARCHAR NOT NULL,
            format          VARCHAR,
            encoding        VARCHAR,
            records         BIGINT NOT NULL,
            stored          BIGINT NOT NULL,
            quarantined     BIGINT NOT NULL,
            ingested_at     TIMESTAMP NOT NULL
        )""",
    )),
    # A verdict is about a run or, where the run has several actors, about one of them
    # (issue 18): `focus` joins the key ('' for the whole run), so a two-agent dialogue
    # gets a verdict per agent. A key cannot be altered in place: the tables are rebuilt.
    Migration(13, "scores and score units per subject; metrics say what they are about", (
        *_rebuilt("scores", """(
            run_id          VARCHAR NOT NULL,
            metric_set_id   VARCHAR NOT NULL,
            metric_set_version INTEGER NOT NULL,
            metric_id       VARCHAR NOT NULL,
            focus           VARCHAR NOT NULL DEFAULT '',
            value           TINYINT NOT NULL,
            evidence        INTEGER[],
            reason          VARCHAR,
            confidence      DOUBLE,
            backend         VARCHAR NOT NULL,
            backend_version VARCHAR NOT NULL,
            job_id          VARCHAR,
            created_at      TIMESTAMP NOT NULL,
            rate            DOUBLE,
            agent           VARCHAR,
            run_at          TIMESTAMP,
            PRIMARY KEY (run_id, metric_set_id, metric_set_version, metric_id, backend, focus)
        )""", ("run_id", "metric_set_id", "metric_set_version", "metric_id", "value", "evidence", "reason",
               "confidence", "backend", "backend_version", "job_id", "created_at", "rate", "agent", "run_at")),
        "CREATE INDEX scores_metric ON scores (metric_set_id, metric_id)",
        "CREATE INDEX scores_created ON scores (created_at)",
        *_rebuilt("score_units", """(
            run_id          VARCHAR NOT NULL,
            metric_set_id   VARCHAR NOT NULL,
            metric_set_version INTEGER NOT NULL,
            metric_id       VARCHAR NOT NULL,
            backend         VARCHAR NOT NULL,
            focus           VARCHAR NOT NULL DEFAULT '',
            unit            INTEGER NOT NULL,
            value           TINYINT NOT NULL,
            reason          VARCHAR,
            PRIMARY KEY (run_id, metric_set_id, metric_set_version, metric_id, backend, focus, unit)
        )""", ("run_id", "metric_set_id", "metric_set_version", "metric_id", "backend", "unit", "value",
               "reason")),
        # 'run' (one verdict per run) or 'agent' (one per actor of a multi-agent run)
        "ALTER TABLE metric_defs ADD COLUMN subject VARCHAR DEFAULT 'run'",
    )),
    # A step locator fitted on the steps people anchored their notes to: its weights per trace
    # format (NULL for a format where fitting did not beat the default weights under
    # cross-validation), that report, and which version grounding uses.
    Migration(14, "fitted step locators, versioned", (
        """CREATE TABLE step_locators (
            version         INTEGER PRIMARY KEY,
            weights         JSON NOT NULL,
            report          JSON NOT NULL,
            embedder        VARCHAR,
            examples        INTEGER NOT NULL,
            created_at      TIMESTAMP NOT NULL,
            created_by      VARCHAR,
            chosen          BOOLEAN NOT NULL
        )""",
        *_lock_tables(_LOCKS_14),
    )),
    # `libra serve` keeps every span and log record as received (the OTLP JSON of one span, its
    # resource's attributes and scope), so a trace whose spans arrive in many requests is rebuilt
    # whole each time more of it arrives, and a replay after a crash rewrites the same rows.
    Migration(15, "spans and log records received over OTLP", (
        """CREATE TABLE otlp_spans (
            trace_id        VARCHAR NOT NULL,
            span_id         VARCHAR NOT NULL,
            payload         JSON NOT NULL,
            received_at     TIMESTAMP NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        )""",
        """CREATE TABLE otlp_logs (
            trace_id        VARCHAR NOT NULL,
            log_id          VARCHAR NOT NULL,
            span_id         VARCHAR,
            payload         JSON NOT NULL,
            received_at     TIMESTAMP NOT NULL,
            PRIMARY KEY (trace_id, log_id)
        )""",
        *_lock_tables(_LOCKS_15),
    )),
    # The app's sign-ins that outlive a reload (libra/sessions.py): a row per sign-in, so signing
    # out ends that one session wherever its cookie went; the token itself is signed.
    Migration(16, "app sessions that survive a reload", (
        """CREATE TABLE app_sessions (
            session_id      VARCHAR PRIMARY KEY,
            username        VARCHAR NOT NULL,
            issued_at       TIMESTAMP NOT NULL,
            expires_at      TIMESTAMP NOT NULL,
            revoked_at      TIMESTAMP
        )""",
    )),
    # Living metrics (autolibra/living.py): each scheduled measurement of how much of the feedback
    # written since a set was approved that set covers, per week the remarks were written.
    Migration(17, "coverage of new feedback, measured on a schedule", (
        """CREATE TABLE feedback_coverage (
            set_id          VARCHAR NOT NULL,
            version         INTEGER NOT NULL,
            measured_at     TIMESTAMP NOT NULL,
            week            TIMESTAMP NOT NULL,
            remarks         INTEGER NOT NULL,
            covered         INTEGER NOT NULL,
            job             VARCHAR,
            PRIMARY KEY (set_id, version, measured_at, week)
        )""",
    )),
    # Pairwise preferences (traces/annotation/preferences.py): two runs of one task side by side, which
    # is better and why. A pairwise queue's items are pairs; its assignments name the pair's id.
    Migration(18, "pairwise preferences and pairwise queues", (
        """CREATE TABLE preferences (
            pref_id         VARCHAR PRIMARY KEY,
            pair_id         VARCHAR NOT NULL,
            run_a           VARCHAR NOT NULL,
            run_b           VARCHAR NOT NULL,
            author          VARCHAR NOT NULL,
            choice          VARCHAR NOT NULL,
            reason          VARCHAR,
            steps_a         INTEGER[],
            steps_b         INTEGER[],
            queue_id        VARCHAR,
            feedback_id     VARCHAR,
            created_at      TIMESTAMP NOT NULL
        )""",
        "CREATE INDEX preferences_pair ON preferences (pair_id)",
        "ALTER TABLE queues ADD COLUMN kind VARCHAR",
        """CREATE TABLE queue_pairs (
            queue_id        VARCHAR NOT NULL,
            pair_id         VARCHAR NOT NULL,
            run_a           VARCHAR NOT NULL,
            run_b           VARCHAR NOT NULL,
            PRIMARY KEY (queue_id, pair_id)
        )""",
    )),
)


LATEST = MIGRATIONS[-1].version

# The annotators' write-ahead journal is a SQLite file beside the store
# (traces/journal.py); its two statements live here so all DDL is in one place.
JOURNAL_DDL = (
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
    "payload TEXT NOT NULL, created REAL NOT NULL, applied INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS events_pending ON events (applied, seq)",
    # a note's own events, so editing it reads the journal only (traces/annotation/feedback.py)
    "CREATE INDEX IF NOT EXISTS events_feedback ON events (json_extract(payload, '$.feedback_id'), seq)",
)

# Where migrations are recorded; created before the first one runs (traces/migrate.py).
MIGRATIONS_DDL = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
                  " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")
