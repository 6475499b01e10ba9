"""The outbox: a local SQLite queue of detections not yet delivered, that survives crashes and power cuts.

Every detection is committed here (WAL journal, synchronous=FULL, so the commit is on disk when
`add` returns) before any attempt to send it; a sender takes the oldest rows with `pending`, and
removes them with `mark_sent` only after the receiver has acknowledged them. A crash between
the two re-sends the batch, and the receiver deduplicates by detection id: at-least-once
delivery, nothing stored twice.

The outbox is bounded (rows and bytes). When a new detection would exceed a bound, the oldest
undelivered detections are dropped: the drop is logged as a warning and counted
(`dropped_count`). Batches the receiver refuses for good (4xx other than 408/429) move to the
dead-letter table with the reason (`dead_letter`), which is bounded the same way;
`requeue_dead_letters` puts them back once the cause is fixed.

Every operation first checks that the file at the outbox path is still the one opened: SQLite would
go on writing into a deleted file, so a deleted or replaced outbox raises OutboxError instead of
reporting detections as queued or pending in a file that no longer exists.

Safe to share between threads of one process (one connection behind a lock) and between
processes (SQLite locking; a busy database is waited for up to `busy_timeout_s`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from edge_runtime.detection import Detection, DetectionError
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.setting_field import setting

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMA_VERSION = 1
_ROWIDS_PER_STATEMENT = 500
_MIN_MAX_BYTES = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    detection_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    added_utc TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    detection_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    added_utc TEXT NOT NULL,
    dead_utc TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES
    ('pending_rows', 0), ('pending_bytes', 0), ('added', 0), ('sent', 0), ('dropped', 0),
    ('dead_lettered', 0), ('dead_letters_dropped', 0), ('requeued', 0);
CREATE TRIGGER IF NOT EXISTS pending_added AFTER INSERT ON pending BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'pending_rows';
    UPDATE counters SET value = value + NEW.size_bytes WHERE name = 'pending_bytes';
END;
CREATE TRIGGER IF NOT EXISTS pending_removed AFTER DELETE ON pending BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'pending_rows';
    UPDATE counters SET value = value - OLD.size_bytes WHERE name = 'pending_bytes';
END;
"""


class OutboxError(EdgeRuntimeError):
    """The outbox file cannot be opened or written; the message names the file and what to do."""


@dataclass(frozen=True)
class OutboxSettings:
    """Bounds of the outbox (`EdgeSettings.outbox_limits`; user settings `outbox_max_rows`, `outbox_max_bytes`).
    The path itself is a runtime setting (--outbox)."""

    max_rows: int = setting(200_000, "int", "outbox bound in rows; beyond it the oldest are dropped (logged)")
    """Most undelivered detections kept; beyond it the oldest are dropped (logged, counted)."""
    max_bytes: int = setting(128 * 1024 * 1024, "int",
                             "outbox bound in bytes of detection JSON; oldest dropped beyond")
    """Most bytes of undelivered detection JSON kept (about 600 bytes each); beyond it the oldest are dropped."""
    max_dead_letters: int = 20_000
    """Most dead-lettered detections kept; beyond it the oldest dead letters are dropped (counted)."""
    busy_timeout_s: float = 10.0
    """How long to wait for another process (e.g. `flush`) holding the database lock."""

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise OutboxError(f"outbox setting max_rows: must be at least 1 (got {self.max_rows})")
        if self.max_bytes < _MIN_MAX_BYTES:
            raise OutboxError(f"outbox setting max_bytes: must be at least {_MIN_MAX_BYTES} (got {self.max_bytes})")
        if self.max_dead_letters < 1:
            raise OutboxError(f"outbox max_dead_letters: {self.max_dead_letters} must be at least 1")
        if self.busy_timeout_s <= 0:
            raise OutboxError(f"outbox busy_timeout_s: {self.busy_timeout_s} must be positive")


@dataclass(frozen=True)
class DeadLetter:
    """A detection the receiver refused for good, with the reason."""

    seq: int
    detection_id: str
    reason: str
    dead_utc: str
    """When it was dead-lettered (ISO 8601 UTC)."""


@dataclass(frozen=True)
class OutboxStats:
    """A snapshot of the outbox for the status file."""

    depth: int
    """Undelivered detections."""
    pending_bytes: int
    """Bytes of undelivered detection JSON."""
    dead_letters: int
    """Detections in the dead-letter table."""
    dropped: int
    """Undelivered detections dropped because the outbox was full (since it was created)."""
    added: int
    """Detections ever queued (duplicates of a still-pending id are not counted)."""
    sent: int
    """Detections acknowledged by a sink."""
    oldest_pending_utc: str | None
    """When the oldest undelivered detection was queued; None when the outbox is empty."""
    last_dead_letter_reason: str | None
    """Reason of the newest dead letter; None when there are none."""


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _chunks(rowids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(rowids), _ROWIDS_PER_STATEMENT):
        yield rowids[start : start + _ROWIDS_PER_STATEMENT]


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class Outbox:
    """A bounded, durable SQLite queue of detections (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_rows: int = OutboxSettings.max_rows,
        max_bytes: int = OutboxSettings.max_bytes,
        max_dead_letters: int = OutboxSettings.max_dead_letters,
        busy_timeout_s: float = OutboxSettings.busy_timeout_s,
        create: bool = True,
    ) -> None:
        """Open (and with create=True, create) the outbox at path; raises OutboxError."""
        self.settings = OutboxSettings(
            max_rows=max_rows, max_bytes=max_bytes, max_dead_letters=max_dead_letters, busy_timeout_s=busy_timeout_s
        )
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise OutboxError(f"{self.path}: no outbox there; check the --outbox path")
        self._lock = threading.Lock()
        self._conn = self._connect()
        self._identity = self._file_identity()

    @classmethod
    def open(cls, path: str | Path, *, settings: OutboxSettings, create: bool = True) -> Outbox:
        """Open the outbox at path with the bounds of settings."""
        return cls(
            path,
            max_rows=settings.max_rows,
            max_bytes=settings.max_bytes,
            max_dead_letters=settings.max_dead_letters,
            busy_timeout_s=settings.busy_timeout_s,
            create=create,
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.settings.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox ({exc}); check the path and its permissions") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); put the outbox on a local disk")
            conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise OutboxError(
                    f"{self.path}: outbox schema version {version}, this runtime knows {SCHEMA_VERSION}; "
                    "flush it with the runtime that wrote it, or move it away"
                )
            conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise OutboxError(
                f"{self.path}: not a usable outbox database ({exc}); move the file away or choose another --outbox"
            ) from exc
        except OutboxError:
            conn.close()
            raise
        return conn

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def check_present(self) -> None:
        """Raise OutboxError when the outbox file was deleted or replaced since it was opened."""
        if self._file_identity() != self._identity:
            raise OutboxError(
                f"{self.path}: the outbox file was deleted or replaced while running; what it held is gone from "
                "this path. Restart the runtime (it creates a new outbox) and find out what removed the file"
            )

    # -- transactions -------------------------------------------------------------------------

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run work(conn) in one IMMEDIATE transaction, committed (and synced) before returning."""
        with self._lock:
            self.check_present()
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: outbox write failed ({exc}); check free disk space") from exc
            return result

    def _counter(self, conn: sqlite3.Connection, name: str) -> int:
        return int(conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def _bump(self, conn: sqlite3.Connection, name: str, delta: int) -> None:
        if delta:
            conn.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))

    # -- queueing -----------------------------------------------------------------------------

    def add(self, detections: Sequence[Detection]) -> int:
        """Queue detections; committed and fsynced when this returns.

        A detection whose id is already pending is ignored. When the bounds are exceeded the
        oldest pending detections are dropped (logged as a warning, counted by dropped_count).
        Returns the number of detections newly queued.
        """
        rows = []
        for detection in detections:
            if not isinstance(detection, Detection):
                raise TypeError(f"Outbox.add takes Detection objects, got {type(detection).__name__}")
            payload = json.dumps(detection.to_json_dict(), separators=(",", ":"), ensure_ascii=False)
            rows.append((detection.id, payload, len(payload.encode("utf-8"))))
        if not rows:
            return 0
        now = _now_utc()

        def work(conn: sqlite3.Connection) -> tuple[int, int, str | None]:
            # rowcount, not total_changes: the latter also counts the rows the triggers update.
            added = conn.executemany(
                "INSERT OR IGNORE INTO pending (detection_id, payload, size_bytes, added_utc) VALUES (?, ?, ?, ?)",
                [(i, p, s, now) for i, p, s in rows],
            ).rowcount
            self._bump(conn, "added", added)
            dropped, oldest = self._enforce_bounds(conn)
            return added, dropped, oldest

        added, dropped, oldest = self._write(work)
        if dropped:
            log.warning(
                "outbox full (max_rows=%d, max_bytes=%d): dropped the %d oldest undelivered detection(s), "
                "the oldest queued at %s; %d dropped in total (drop-oldest policy)",
                self.settings.max_rows,
                self.settings.max_bytes,
                dropped,
                oldest,
                self.dropped_count(),
            )
        return added

    def _enforce_bounds(self, conn: sqlite3.Connection) -> tuple[int, str | None]:
        rows = self._counter(conn, "pending_rows")
        size = self._counter(conn, "pending_bytes")
        if rows <= self.settings.max_rows and size <= self.settings.max_bytes:
            return 0, None
        excess_rows = max(0, rows - self.settings.max_rows)
        excess_bytes = max(0, size - self.settings.max_bytes)
        cutoff, n_drop, freed, oldest = None, 0, 0, None
        for seq, size_bytes, added_utc in conn.execute("SELECT seq, size_bytes, added_utc FROM pending ORDER BY seq"):
            if n_drop >= excess_rows and freed >= excess_bytes:
                break
            oldest = oldest or added_utc
            cutoff, n_drop, freed = seq, n_drop + 1, freed + size_bytes
        conn.execute("DELETE FROM pending WHERE seq <= ?", (cutoff,))
        self._bump(conn, "dropped", n_drop)
        return n_drop, oldest

    def pending(self, limit: int) -> list[tuple[int, Detection]]:
        """The oldest undelivered detections, at most limit: [(rowid, Detection), ...] in queue order.

        A row that no longer parses (which only a damaged file can produce) is moved to the
        dead letters with the reason instead of blocking the queue.
        """
        if limit < 1:
            raise ValueError(f"pending: limit {limit} must be at least 1")
        with self._lock:
            self.check_present()
            try:
                rows = self._conn.execute("SELECT seq, payload FROM pending ORDER BY seq LIMIT ?", (limit,)).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: cannot read the outbox ({exc})") from exc
        result, broken = [], []
        for seq, payload in rows:
            try:
                result.append((seq, Detection.from_json_dict(json.loads(payload))))
            except (ValueError, DetectionError) as exc:
                broken.append((seq, str(exc)))
        for seq, reason in broken:
            self.dead_letter([seq], f"unreadable outbox row: {reason}")
        return result

    def mark_sent(self, rowids: Sequence[int]) -> int:
        """Remove acknowledged detections; returns how many were still pending (dropped ones are skipped)."""
        rowids = list(rowids)

        def work(conn: sqlite3.Connection) -> int:
            removed = 0
            for chunk in _chunks(rowids):
                removed += conn.execute(f"DELETE FROM pending WHERE seq IN ({_placeholders(len(chunk))})", chunk).rowcount
            self._bump(conn, "sent", removed)
            return removed

        return self._write(work) if rowids else 0

    def record_failure(self, rowids: Sequence[int], reason: str) -> None:
        """Note a failed (to be retried) attempt on these rows: attempts += 1, last_error = reason."""
        rowids = list(rowids)

        def work(conn: sqlite3.Connection) -> None:
            for chunk in _chunks(rowids):
                conn.execute(
                    f"UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE seq IN ({_placeholders(len(chunk))})",
                    [reason, *chunk],
                )

        if rowids:
            self._write(work)

    def dead_letter(self, rowids: Sequence[int], reason: str) -> int:
        """Move these pending rows to the dead-letter table with reason; returns how many moved.

        Logged as an error. The dead-letter table keeps at most max_dead_letters rows (oldest dropped, counted).
        """
        rowids = list(rowids)
        now = _now_utc()

        def work(conn: sqlite3.Connection) -> tuple[int, int]:
            moved = 0
            for chunk in _chunks(rowids):
                marks = _placeholders(len(chunk))
                cursor = conn.execute(
                    "INSERT INTO dead_letters (detection_id, payload, size_bytes, added_utc, dead_utc, reason) "
                    f"SELECT detection_id, payload, size_bytes, added_utc, ?, ? FROM pending WHERE seq IN ({marks}) "
                    "ORDER BY seq",
                    [now, reason, *chunk],
                )
                moved += cursor.rowcount
                conn.execute(f"DELETE FROM pending WHERE seq IN ({marks})", chunk)
            self._bump(conn, "dead_lettered", moved)
            count = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
            excess = count - self.settings.max_dead_letters
            if excess > 0:
                conn.execute(
                    "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters ORDER BY seq LIMIT ?)",
                    (excess,),
                )
                self._bump(conn, "dead_letters_dropped", excess)
            return moved, max(0, excess)

        moved, forgotten = self._write(work) if rowids else (0, 0)
        if moved:
            log.error("dead-lettered %d detection(s): %s", moved, reason)
        if forgotten:
            log.warning("dead-letter table full (max_dead_letters=%d): dropped its %d oldest entries",
                        self.settings.max_dead_letters, forgotten)
        return moved

    def requeue_dead_letters(self, *, limit: int | None = None) -> int:
        """Move dead letters (oldest first, at most limit) back to the pending queue; returns how many.

        For after the cause is fixed (a wrong token, a receiver bug). Bounds apply as in add.
        """

        def work(conn: sqlite3.Connection) -> int:
            seqs = [
                row[0]
                for row in conn.execute("SELECT seq FROM dead_letters ORDER BY seq LIMIT ?", (-1 if limit is None else limit,))
            ]
            for chunk in _chunks(seqs):
                marks = _placeholders(len(chunk))
                conn.execute(
                    "INSERT OR IGNORE INTO pending (detection_id, payload, size_bytes, added_utc) "
                    f"SELECT detection_id, payload, size_bytes, added_utc FROM dead_letters WHERE seq IN ({marks}) "
                    "ORDER BY seq",
                    chunk,
                )
                conn.execute(f"DELETE FROM dead_letters WHERE seq IN ({marks})", chunk)
            self._bump(conn, "requeued", len(seqs))
            self._enforce_bounds(conn)
            return len(seqs)

        moved = self._write(work)
        if moved:
            log.info("requeued %d dead-lettered detection(s)", moved)
        return moved

    # -- inspection ---------------------------------------------------------------------------

    def _read_counter(self, name: str) -> int:
        with self._lock:
            self.check_present()
            try:
                return self._counter(self._conn, name)
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: cannot read the outbox ({exc})") from exc

    def depth(self) -> int:
        """Number of undelivered detections."""
        return self._read_counter("pending_rows")

    def pending_bytes(self) -> int:
        """Bytes of undelivered detection JSON."""
        return self._read_counter("pending_bytes")

    def dropped_count(self) -> int:
        """Undelivered detections dropped by the drop-oldest policy since the outbox was created."""
        return self._read_counter("dropped")

    def dead_letter_count(self) -> int:
        """Detections currently in the dead-letter table."""
        with self._lock:
            self.check_present()
            return int(self._conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, newest first, at most limit."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, detection_id, reason, dead_utc FROM dead_letters ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [DeadLetter(seq=s, detection_id=i, reason=r, dead_utc=t) for s, i, r, t in rows]

    def journal_settings(self) -> dict[str, str]:
        """The durability settings in force on this connection: {'journal_mode': 'wal', 'synchronous': 'full'}."""
        names = {0: "off", 1: "normal", 2: "full", 3: "extra"}
        with self._lock:
            mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            sync = self._conn.execute("PRAGMA synchronous").fetchone()[0]
        return {"journal_mode": str(mode).lower(), "synchronous": names.get(int(sync), str(sync))}

    def stats(self) -> OutboxStats:
        """A consistent snapshot of the counters (one read transaction)."""
        with self._lock:
            self.check_present()
            conn = self._conn
            conn.execute("BEGIN")
            try:
                counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
                oldest = conn.execute("SELECT added_utc FROM pending ORDER BY seq LIMIT 1").fetchone()
                n_dead, = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
                last_reason = conn.execute("SELECT reason FROM dead_letters ORDER BY seq DESC LIMIT 1").fetchone()
            finally:
                conn.execute("COMMIT")
        return OutboxStats(
            depth=int(counters["pending_rows"]),
            pending_bytes=int(counters["pending_bytes"]),
            dead_letters=int(n_dead),
            dropped=int(counters["dropped"]),
            added=int(counters["added"]),
            sent=int(counters["sent"]),
            oldest_pending_utc=oldest[0] if oldest else None,
            last_dead_letter_reason=last_reason[0] if last_reason else None,
        )

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
