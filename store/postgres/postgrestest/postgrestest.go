// Package postgrestest gives each test a fresh, migrated PostgreSQL schema.
package postgrestest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store/postgres"
)

// DefaultDatabaseURL is the local test database the README names, used when
// TEST_DATABASE_URL is not set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DatabaseURL returns TEST_DATABASE_URL, or DefaultDatabaseURL.
func DatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// setupTimeout bounds creating, migrating and dropping a schema.
const setupTimeout = 30 * time.Second

// NewSchema creates a uniquely named schema in the test database, applies the
// migrations to it, and returns a connection URL whose search_path is that
// schema, so that anything given the URL (a subprocess too) works in it
// alone. The schema is dropped when the test and its cleanups registered
// later have finished. Under -short the test is skipped; when the database
// cannot be reached the test fails saying how to start it.
func NewSchema(t testing.TB) string {
	t.Helper()
	u := NewEmptySchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatalf("postgrestest: %v", err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("postgrestest: %v", err)
	}
	return u
}

// NewEmptySchema is NewSchema without the migrations, for tests of migrating.
func NewEmptySchema(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping test that needs PostgreSQL in -short mode")
	}
	base := DatabaseURL()
	schema := schemaName(t.Name())
	u, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("postgrestest: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("postgrestest: cannot reach the test database: %v\n"+
			"Start PostgreSQL with\n"+
			"\tpg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"+
			"or set TEST_DATABASE_URL (now %s); -short skips these tests.", err, redact(base))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("postgrestest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })
	return u
}

// dropSchema runs in t.Cleanup, after t.Context() is cancelled: it has its own.
func dropSchema(t testing.TB, base, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("postgrestest: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("postgrestest: drop schema %s: %v", schema, err)
	}
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// schemaName makes a schema name from the test's name and 8 random bytes:
// readable in psql, unique across parallel tests and packages, and within
// Postgres's 63-byte limit.
func schemaName(test string) string {
	b := make([]byte, 8)
	rand.Read(b)
	name := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(test), "_"), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	return "test_" + name + "_" + hex.EncodeToString(b)
}

// withSearchPath returns connString with search_path set to schema, as a
// runtime parameter that every connection sends at startup.
func withSearchPath(connString, schema string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", fmt.Errorf("parse TEST_DATABASE_URL %s: %w", redact(connString), err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// Keyword/value: unknown keywords become runtime parameters too.
	return connString + " search_path=" + schema, nil
}

// redact shows a URL without its password, and nothing of other strings.
func redact(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		return "(keyword/value connection string not shown)"
	}
	return u.Redacted()
}
