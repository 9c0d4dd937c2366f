package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/batchreset/batchreset/migrations"
	"github.com/batchreset/batchreset/store"
)

// versionTableName is tern's version table, created in the target schema so
// that each schema (each test's, say) migrates on its own.
const versionTableName = "schema_version"

// wantedVersion is the number of embedded migrations: the schema version this
// binary needs.
var wantedVersion = sync.OnceValue(func() int32 {
	m, err := migrate.NewMigrator(context.Background(), nil, versionTableName)
	if err == nil {
		err = m.LoadMigrations(migrations.FS)
	}
	if err != nil {
		panic(fmt.Sprintf("postgres: embedded migrations do not load: %v", err))
	}
	return int32(len(m.Migrations))
})

// Migrate applies the embedded migrations that the schema lacks, each in its
// own transaction under tern's advisory lock, so concurrent calls are safe.
// The schema is the first existing one on the connection's search_path, and
// tern records its version in that schema's schema_version table. Migrate on
// an up-to-date schema does nothing.
func (s *Store) Migrate(ctx context.Context) error {
	_, _, err := s.MigrateCount(ctx)
	return err
}

// MigrateCount is Migrate, and says how many migrations it applied and the
// schema's version after them.
func (s *Store) MigrateCount(ctx context.Context) (applied int, version int32, err error) {
	// A connection of its own, closed afterwards: if ctx ends mid-way, tern
	// cannot release its session-level advisory lock, and a pooled
	// connection would carry that lock on.
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	schema, err := currentSchema(ctx, conn)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	m, err := migrate.NewMigrator(ctx, conn, versionTable(schema))
	if err != nil {
		return 0, 0, fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return 0, 0, fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	before, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, 0, fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	after, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate schema %q: %w", schema, err)
	}
	return int(after - before), after, nil
}

// CheckSchema reports whether the schema has every embedded migration. It
// returns an error wrapping store.ErrSchemaOutdated, and naming both versions,
// when the schema is behind (a schema never migrated is at version 0), and a
// plain error when the schema is ahead of this binary.
func (s *Store) CheckSchema(ctx context.Context) error {
	have, err := s.schemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("check schema: %w", err)
	}
	want := wantedVersion()
	switch {
	case have < want:
		return fmt.Errorf("check schema: database at version %d, this binary wants %d: %w", have, want, store.ErrSchemaOutdated)
	case have > want:
		return fmt.Errorf("check schema: database at version %d is newer than this binary (version %d): upgrade batchreset", have, want)
	}
	return nil
}

// querier is what the helpers below need from a connection, pool or
// transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) schemaVersion(ctx context.Context) (int32, error) {
	schema, err := currentSchema(ctx, s.pool)
	if err != nil {
		return 0, err
	}
	var exists bool
	const existsSQL = `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL`
	if err := s.pool.QueryRow(ctx, existsSQL, schema, versionTableName).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int32
	if err := s.pool.QueryRow(ctx, "SELECT version FROM "+versionTable(schema)).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", interpret(err))
	}
	return v, nil
}

// currentSchema returns the schema that unqualified names are created in.
func currentSchema(ctx context.Context, q querier) (string, error) {
	var schema *string
	if err := q.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", err
	}
	if schema == nil {
		return "", errors.New("no schema on the search_path exists: create it or set search_path")
	}
	return *schema, nil
}

// versionTable qualifies tern's version table with schema, quoted. (tern's
// own existence check then misses it and falls back to CREATE TABLE IF NOT
// EXISTS, which is equally correct.)
func versionTable(schema string) string {
	return pgx.Identifier{schema, versionTableName}.Sanitize()
}
