package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/postgres"
	"github.com/batchreset/batchreset/store/postgres/postgrestest"
)

// TestInstanceIDSameEverywhere: an instance ID of the wrong length gets the
// same error from a jobs CSV (plan, import), an --exclude file (a list, or
// a CSV) and the Postgres store's import of selected jobs.
func TestInstanceIDSameEverywhere(t *testing.T) {
	t.Parallel()
	const want = `malformed ID "lhins-abc" (want lhins- and 8 lowercase letters or digits)`
	dir := t.TempDir()
	jobs := filepath.Join(dir, "jobs.csv")
	writeFile(t, jobs, "instance_id,region\nlhins-aaaaaaaa,ap-guangzhou\nlhins-abc,ap-guangzhou\n")

	res := batchreset(t, "plan", "--jobs", jobs, "--emulate")
	res.wantCode(t, exitUsage, "plan")
	if !strings.Contains(res.stderr, jobs+":3: instance_id: "+want) {
		t.Errorf("plan: stderr lacks %q:\n%s", want, res.stderr)
	}

	url := postgrestest.NewSchema(t)
	res = batchreset(t, "import", "--database-url", url, "--jobs", jobs, "--run", "r")
	res.wantCode(t, exitUsage, "import")
	if !strings.Contains(res.stderr, jobs+":3: instance_id: "+want) {
		t.Errorf("import: stderr lacks %q:\n%s", want, res.stderr)
	}
	db, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ImportSelected(t.Context(), "sel", "test", []store.Job{{InstanceID: "lhins-abc", Region: "ap-guangzhou"}})
	if err == nil || !strings.HasSuffix(err.Error(), "instance_id: "+want) {
		t.Errorf("ImportSelected(lhins-abc) = %v, want an error ending %q", err, want)
	}

	for name, content := range map[string]string{
		"list.txt": "lhins-aaaaaaaa\nlhins-abc\n",
		"list.csv": "note,instance_id\n\"a, b\",lhins-aaaaaaaa\n\"c, d\",lhins-abc\n",
	} {
		path := filepath.Join(dir, name)
		writeFile(t, path, content)
		_, err := readExclude(path)
		if err == nil || !strings.Contains(err.Error(), path+":") || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("readExclude(%s) = %v, want an error naming the file and ending %q", name, err, want)
		}
	}
}

// TestBlueprintColumnRefused: a jobs CSV whose blueprint column is called
// "blueprint" is refused, naming blueprint_id, by every command that reads
// it, with --allow-unknown-columns too; nothing is reset.
func TestBlueprintColumnRefused(t *testing.T) {
	t.Parallel()
	jobs := filepath.Join(t.TempDir(), "jobs.csv")
	writeFile(t, jobs, "instance_id,blueprint,region\nlhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou\n")
	const want = ":1: blueprint: unknown column: did you mean blueprint_id?"
	for _, args := range [][]string{
		{"run", "--jobs", jobs, "--emulate", "--yes"},
		{"run", "--jobs", jobs, "--emulate", "--yes", "--allow-unknown-columns"},
		{"plan", "--jobs", jobs, "--emulate"},
		{"status", "--jobs", jobs},
		{"emulator", "--jobs", jobs, "--listen", "127.0.0.1:0"},
	} {
		res := batchreset(t, args...)
		res.wantCode(t, exitUsage, strings.Join(args, " "))
		if !strings.Contains(res.stderr, jobs+want) {
			t.Errorf("%v: stderr lacks %q:\n%s", args, want, res.stderr)
		}
	}
	// A column of the file's own is an error unless allowed.
	writeFile(t, jobs, "instance_id,region,owner\nlhins-aaaaaaaa,ap-guangzhou,ops\n")
	res := batchreset(t, "plan", "--jobs", jobs, "--emulate", "--summary")
	res.wantCode(t, exitUsage, "plan, an owner column")
	if !strings.Contains(res.stderr, jobs+":1: owner: unknown column") {
		t.Errorf("plan, an owner column: stderr:\n%s", res.stderr)
	}
	res = batchreset(t, "plan", "--jobs", jobs, "--emulate", "--summary", "--allow-unknown-columns")
	res.wantCode(t, exitOK, "plan --allow-unknown-columns, an owner column")
}
