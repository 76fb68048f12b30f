// Package sqlstore is the fleet.Store of every `upkeep serve`: one SQL
// implementation over database/sql with two dialects, SQLite (embedded,
// through modernc.org/sqlite, no cgo) and PostgreSQL (many replicas,
// through pgx). The SQL is written once; placeholders, column types and
// locking differ in a small dialect struct. The schema is migrated at Open.
package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"               // registers "sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
)

// Schemes are the store URL schemes Open accepts.
var Schemes = []string{"sqlite://", "postgres://", "postgresql://"}

// sqliteBusyTimeout is how long a SQLite writer waits for another
// process's write transaction before failing: far longer than any of ours.
const sqliteBusyTimeout = 10 * time.Second

// maxLeaseLog bounds the lease log: the oldest entries go first.
const maxLeaseLog = 100_000

// maxList bounds a read that asks for "all" (a limit of 0).
const maxList = 10_000

// Store is a fleet.Store on SQLite or PostgreSQL.
type Store struct {
	d   *dialect
	db  *sql.DB
	url string // redacted, for errors
	o   fleet.Options
	wmu sync.Mutex // see dialect.serialWrites
}

var _ fleet.Store = (*Store)(nil)

// Open connects to the store at rawURL (sqlite:///abs/path/fleet.db,
// sqlite://relative/path.db, postgres://user:pass@host/db?sslmode=...) and
// migrates its schema to this version's. Errors never carry the password.
func Open(ctx context.Context, rawURL string, o fleet.Options) (*Store, error) {
	o.StaleAfter = cmp.Or(o.StaleAfter, report.DefaultStaleAfter)
	o.HistoryPerAgent = cmp.Or(o.HistoryPerAgent, fleet.DefaultHistoryPerAgent)
	o.MaxAgents = cmp.Or(o.MaxAgents, report.DefaultMaxAgents)
	if o.StaleAfter < 0 || o.HistoryPerAgent < 0 || o.MaxAgents < 0 {
		return nil, fmt.Errorf("fleet store options: staleAfter %s, historyPerAgent %d and maxAgents %d must not be negative",
			o.StaleAfter, o.HistoryPerAgent, o.MaxAgents)
	}
	s := &Store{o: o, url: Redact(rawURL)}
	var dsn string
	switch scheme, rest, _ := strings.Cut(rawURL, "://"); strings.ToLower(scheme) {
	case "sqlite":
		path, err := sqlitePath(rest)
		if err != nil {
			return nil, fmt.Errorf("fleet store %s: %w", s.url, err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("fleet store %s: %w", s.url, err)
		}
		s.d = sqliteDialect
		// synchronous=NORMAL is durable
		// across a crash of the process (only a power loss can cost the
		// last transactions): this is observed state, re-sent by every
		// updater at its next pass. _txlock=immediate makes every
		// transaction take the write lock when it begins, so concurrent
		// writers wait in turn (busy_timeout) instead of failing when one
		// upgrades from reading to writing. The journal mode is set after
		// connecting (see useWAL), not here: it is a property of the file.
		dsn = "file:" + path + fmt.Sprintf("?_busy_timeout=%d&_synchronous=NORMAL&_txlock=immediate",
			sqliteBusyTimeout.Milliseconds())
	case "postgres", "postgresql":
		s.d = postgresDialect
		dsn = rawURL
	default:
		return nil, fmt.Errorf("fleet store %s: unknown scheme; use one of %s (such as sqlite:///var/lib/upkeep/fleet.db or postgres://upkeep@db.example/upkeep)",
			s.url, strings.Join(Schemes, ", "))
	}
	db, err := sql.Open(s.d.driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("fleet store %s: %w", s.url, scrub(err, rawURL))
	}
	s.db = db
	if s.d == sqliteDialect {
		// Readers proceed in parallel under WAL; one writer at a time anyway.
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	} else {
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet store %s: connect: %w", s.url, scrub(err, rawURL))
	}
	if s.d == sqliteDialect {
		if err := useWAL(ctx, db); err != nil {
			db.Close()
			return nil, fmt.Errorf("fleet store %s: %w", s.url, err)
		}
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("fleet store %s: migrate the schema: %w", s.url, scrub(err, rawURL))
	}
	return s, nil
}

// useWAL puts the SQLite file in WAL mode: readers never block the writer
// nor each other, and several processes can share the file. The mode is
// stored in the file, so it is set once and every later connection reads it.
// Switching a fresh file to WAL needs its exclusive lock, and SQLite answers
// SQLITE_BUSY at once, without its busy handler, when another replica is
// opening the same file at the same moment; so it is retried here for as
// long as a writer would wait.
func useWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	pause := 5 * time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			return fmt.Errorf("SQLite kept journal mode %q instead of WAL; is the file on a file system without shared memory (such as NFS)?", mode)
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("set WAL mode: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("set WAL mode: %w", ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (or an extended form).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// sqlitePath is the file a sqlite:// URL names.
func sqlitePath(rest string) (string, error) {
	if rest == "" {
		return "", errors.New("no file: use sqlite:///absolute/path/fleet.db or sqlite://relative/path/fleet.db")
	}
	if strings.ContainsAny(rest, "?#") {
		return "", errors.New("a SQLite store URL takes no query or fragment: name just the file")
	}
	p, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("file name: %w", err)
	}
	return filepath.Clean(p), nil
}

// Redact is u with its password replaced, for logs and errors.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		// Unparseable: keep the scheme only, as the rest may hold a password.
		if scheme, _, ok := strings.Cut(u, "://"); ok {
			return scheme + "://…"
		}
		return "(unparseable store URL)"
	}
	if _, has := p.User.Password(); has {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	q := p.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		p.RawQuery = q.Encode()
	}
	return p.String()
}

// scrub removes the password of rawURL from a driver's error, should the
// driver quote it.
func scrub(err error, rawURL string) error {
	p, perr := url.Parse(rawURL)
	if perr != nil || err == nil {
		return err
	}
	pw, has := p.User.Password()
	if !has {
		pw = p.Query().Get("password")
	}
	if pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}

// Engine is "sqlite" or "postgres".
func (s *Store) Engine() string { return s.d.name }

// URL is the store's URL without its password.
func (s *Store) URL() string { return s.url }

// DB is the underlying handle, for benchmarks and operators' tools.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the connections.
func (s *Store) Close() error { return s.db.Close() }

// write runs fn in a write transaction and commits it.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.d.serialWrites {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// lock takes the transaction-scoped lock named name, where the dialect
// needs one (SQLite's write transaction already excludes other writers).
func (s *Store) lock(ctx context.Context, tx *sql.Tx, name string) error {
	if s.d.lockSQL == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.d.q(s.d.lockSQL), lockKey(name)); err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	return nil
}
