package migrations_test

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/tern/v2/migrate"

	"github.com/batchreset/batchreset/migrations"
)

// TestLoad checks that tern finds every embedded file, in order, and that each
// renders as a template (a stray "{{" would fail here, not in production).
func TestLoad(t *testing.T) {
	t.Parallel()

	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^\d{3}_[a-z0-9_]+\.sql$`)
	for _, n := range names {
		if !valid.MatchString(n) {
			t.Errorf("migration file %q is not named NNN_description.sql", n)
		}
	}

	m, err := migrate.NewMigrator(t.Context(), nil, "schema_version")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatalf("LoadMigrations() = %v, want nil", err)
	}
	if len(m.Migrations) != len(names) {
		t.Fatalf("LoadMigrations() loaded %d migrations, want %d", len(m.Migrations), len(names))
	}
	for i, mig := range m.Migrations {
		if mig.Name != names[i] {
			t.Errorf("migration %d = %q, want %q", i+1, mig.Name, names[i])
		}
		if strings.TrimSpace(mig.UpSQL) == "" {
			t.Errorf("migration %q has no SQL", mig.Name)
		}
	}
}
