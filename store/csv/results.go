package csv

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batchreset/batchreset/store"
)

// resultColumns is the header of the results CSV.
var resultColumns = []string{
	"instance_id", "blueprint_id", "region", "status", "request_id",
	"error_code", "error_message", "attempts", "submitted_at", "finished_at",
	"previous_blueprint_id", "hook_phase",
}

// formulaTriggers are the first characters that make a spreadsheet treat a
// cell as a formula (OWASP, "CSV Injection"), plus the quote used to defuse
// them, so that a value really starting with a quote reads back intact.
const formulaTriggers = "=+-@\t\r'"

// WriteResultsSeq writes jobs to w as the results CSV, one row per job in
// the order given (a Store's All, so that a large run is written without
// holding its jobs), under the header
//
//	instance_id,blueprint_id,region,status,request_id,error_code,error_message,attempts,submitted_at,finished_at,previous_blueprint_id,hook_phase
//
// previous_blueprint_id is the image the instance had before the run reset
// it (empty when the run never looked at it); hook_phase how far its
// lifecycle hooks came (store.HookPhase; empty without hooks). They come
// last, so that readers of the older columns by name or position keep
// working. With accounts (a run whose jobs name accounts) one more column
// follows them, account (store.Job.Account).
// Times are RFC 3339 in UTC to the second, empty when zero. Error messages
// come from the cloud and may hold anything, so a value that a spreadsheet
// would run as a formula (starting with =, +, -, @, tab or carriage return)
// is written with a leading ' (as is a value starting with '); IDs, regions,
// statuses, counts and times never start with one.
func WriteResultsSeq(w io.Writer, jobs iter.Seq[store.Job], accounts bool) error {
	rw := NewResultsWriter(w, accounts)
	for j := range jobs {
		if err := rw.Write(&j); err != nil {
			return err
		}
	}
	return rw.Flush()
}

// ResultsWriter writes a results CSV one job at a time, as WriteResultsSeq
// does: the header first, then a row per Write. Call Flush at the end.
type ResultsWriter struct {
	cw     *csv.Writer
	row    []string
	header bool
}

// NewResultsWriter returns a ResultsWriter writing to w; accounts adds the
// account column, for a run whose jobs name accounts.
func NewResultsWriter(w io.Writer, accounts bool) *ResultsWriter {
	n := len(resultColumns)
	if accounts {
		n++
	}
	return &ResultsWriter{cw: csv.NewWriter(w), row: make([]string, n)}
}

// accountColumn is the results CSV's column of store.Job.Account, after
// resultColumns in a run whose jobs name accounts.
const accountColumn = "account"

// Write writes j's row, after the header if it is the first.
func (rw *ResultsWriter) Write(j *store.Job) error {
	if err := rw.writeHeader(); err != nil {
		return err
	}
	row := rw.row
	row[0] = j.InstanceID
	row[1] = j.BlueprintID
	row[2] = j.Region
	row[3] = string(j.Status)
	row[4] = j.RequestID
	row[5] = j.ErrorCode
	row[6] = j.ErrorMessage
	row[7] = strconv.Itoa(j.Attempts)
	row[8] = formatTime(j.SubmittedAt)
	row[9] = formatTime(j.FinishedAt)
	row[10] = j.PrevBlueprintID
	row[11] = string(j.HookPhase)
	if len(row) > len(resultColumns) {
		row[12] = j.Account
	}
	for k := range row {
		row[k] = defuse(row[k])
	}
	if err := rw.cw.Write(row); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func (rw *ResultsWriter) writeHeader() error {
	if rw.header {
		return nil
	}
	rw.header = true
	header := resultColumns
	if len(rw.row) > len(resultColumns) {
		header = append(slices.Clip(header), accountColumn)
	}
	if err := rw.cw.Write(header); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// Flush writes what is buffered, and the header if no row was written.
func (rw *ResultsWriter) Flush() error {
	if err := rw.writeHeader(); err != nil {
		return err
	}
	rw.cw.Flush()
	if err := rw.cw.Error(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// WriteResultsFileSeq writes the results CSV of jobs to path atomically: into a
// temporary file in the same directory, synced, then renamed over path, and
// the directory synced, so that path holds either the old file or the whole
// new one, even after a crash.
func WriteResultsFileSeq(path string, jobs iter.Seq[store.Job], accounts bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := WriteResultsSeq(bw, jobs, accounts); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// defuse prefixes a value that a spreadsheet would run as a formula with '.
func defuse(s string) string {
	if s != "" && strings.IndexByte(formulaTriggers, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// syncDir makes a rename or a new file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
