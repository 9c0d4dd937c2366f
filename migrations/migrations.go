// Package migrations holds batchreset's SQL schema migrations, applied in
// file-name order by store/postgres with jackc/tern's migrate package.
//
// Each NNN_description.sql file runs in its own transaction under tern's
// advisory lock. tern renders every file as a Go text/template before running
// it, so a literal pair of opening braces must be written as a template
// action that prints them. A migration that has been merged is never edited:
// fix forward with a new file.
package migrations

import "embed"

// FS holds the migration files, named NNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
