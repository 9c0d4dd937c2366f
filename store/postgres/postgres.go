// Package postgres is the batchreset store on PostgreSQL: several runners share
// one run through leased, fenced jobs, and one account-wide rate limit through
// a bucket kept in the database. pgx types and errors stop at this package.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batchreset/batchreset/store"
)

// Store is a batchreset store on one PostgreSQL database schema: the first
// schema of the connection's search_path. Open it with Open; it is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at connString, a postgres:// URL or a
// keyword/value string, and checks that it answers. pgxpool settings such as
// pool_max_conns and runtime parameters such as search_path may be given in
// it. Errors never contain the password: URLs are shown redacted and
// keyword/value strings are not shown at all. Open does not migrate or check
// the schema: see Migrate and CheckSchema. Close the Store when done.
func Open(ctx context.Context, connString string) (*Store, error) {
	return open(ctx, connString, nil)
}

// open is Open with a tracer of every statement (nil: none), for the
// benchmarks' round-trip counts.
func open(ctx context.Context, connString string, tracer pgx.QueryTracer) (*Store, error) {
	where := describeConnString(connString)
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// Not wrapped: pgconn's ParseConfigError keeps the raw string in a
		// public field, and its own masking is only best effort.
		return nil, &openError{msg: fmt.Sprintf("open %s: cannot parse connection string: %s", where, scrub(parseProblem(err), secrets(connString, "")))}
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &openError{msg: fmt.Sprintf("open %s: %s", where, scrub(err.Error(), secrets(connString, cfg.ConnConfig.Password))), err: err}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, &openError{msg: fmt.Sprintf("connect to %s: %s", where, scrub(err.Error(), secrets(connString, cfg.ConnConfig.Password))), err: err}
	}
	return &Store{pool: pool}, nil
}

// Close closes all connections. It waits for connections in use to be
// returned, so it must not be called while other calls are still running.
func (s *Store) Close() {
	s.pool.Close()
}

// openError is a connection error whose text has had every password removed.
// It unwraps to the driver's error so that errors.Is finds context errors.
type openError struct {
	msg string
	err error
}

func (e *openError) Error() string { return e.msg }
func (e *openError) Unwrap() error { return e.err }

// describeConnString names the database for an error message: a URL with its
// passwords masked, or a placeholder for anything else, which is not echoed
// because a keyword/value string cannot be masked reliably.
func describeConnString(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "postgres (connection string not shown)"
	}
	q := u.Query()
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// kvPassword finds password values in a keyword/value connection string.
var kvPassword = regexp.MustCompile(`(?:^|\s)(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// secrets lists the passwords that connString (and the parsed configuration,
// which may have read PGPASSWORD or a service file) carries.
func secrets(connString, parsed string) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	add(parsed)
	if u, err := url.Parse(connString); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok {
			add(p)
		}
		q := u.Query()
		add(q.Get("password"))
		add(q.Get("sslpassword"))
	}
	// A URL that does not parse may still hold user:password@.
	if i := strings.Index(connString, "://"); i >= 0 {
		rest := connString[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, p, ok := strings.Cut(rest[:at], ":"); ok {
				add(p)
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(connString, -1) {
		v := m[1]
		add(v)
		if len(v) >= 2 && v[0] == '\'' {
			add(strings.ReplaceAll(v[1:len(v)-1], `\'`, `'`))
		}
	}
	return out
}

// parseProblem returns what pgconn found wrong with a connection string,
// without the string itself, which pgconn echoes (with passwords masked, on
// a best-effort basis) as "cannot parse `…`: problem".
func parseProblem(err error) string {
	text := err.Error()
	if i := strings.LastIndex(text, "`: "); strings.HasPrefix(text, "cannot parse `") && i >= 0 {
		return text[i+len("`: "):]
	}
	return text
}

// scrub replaces every secret in msg. The driver is not known to print
// passwords; this is the backstop that makes sure of it.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

// interpret translates driver errors into the store's sentinels.
func interpret(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// SQLSTATE codes tested by this package.
const (
	codeUniqueViolation = "23505"
	codeCheckViolation  = "23514"
	// codeDeadlockDetected: the statement was rolled back to break a
	// deadlock with another transaction.
	codeDeadlockDetected = "40P01"
)

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Where names the database and schema the Store works in, without a secret:
// host, port, database and the schema its tables resolve to. Two Stores
// with the same Where share their runs.
func (s *Store) Where(ctx context.Context) (string, error) {
	cfg := s.pool.Config().ConnConfig
	var db, schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_database(), coalesce(current_schema(), '')`).Scan(&db, &schema); err != nil {
		return "", fmt.Errorf("name the database: %w", err)
	}
	return fmt.Sprintf("%s:%d/%s/%s", cfg.Host, cfg.Port, db, schema), nil
}
