package postgrestest_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

func TestNewSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var schema string
	t.Run("Use", func(t *testing.T) {
		u := postgrestest.NewSchema(t)
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		schema = parsed.Query().Get("search_path")
		if schema == "" {
			t.Fatalf("NewSchema() = %q, want a search_path parameter", u)
		}
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var current string
		var version int
		if err := conn.QueryRow(ctx, `SELECT current_schema(), (SELECT version FROM schema_version)`).Scan(&current, &version); err != nil {
			t.Fatalf("query the new schema: %v", err)
		}
		if current != schema || version == 0 {
			t.Errorf("current_schema(), version = %q, %d, want %q and a migrated schema", current, version, schema)
		}
	})

	conn, err := pgx.Connect(ctx, postgrestest.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("schema %q still exists after its test ended", schema)
	}
}
