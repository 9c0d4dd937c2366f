package csv

import (
	"bufio"
	"encoding/csv"
	"errors"
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
	"previous_blueprint_id",
}

// formulaTriggers are the first characters that make a spreadsheet treat a
// cell as a formula (OWASP, "CSV Injection"), plus the quote used to defuse
// them, so that a value really starting with a quote reads back intact.
const formulaTriggers = "=+-@\t\r'"

// WriteResults writes jobs to w as the results CSV, one row per job in the
// order given, under the header
//
//	instance_id,blueprint_id,region,status,request_id,error_code,error_message,attempts,submitted_at,finished_at,previous_blueprint_id
//
// previous_blueprint_id is the image the instance had before the run reset
// it (empty when the run never looked at it); it comes last, so that
// readers of the older columns by name or position keep working. A run
// over several accounts has one more column after it, account
// (store.Job.Account), when a job names one.
// Times are RFC 3339 in UTC to the second, empty when zero. Error messages
// come from the cloud and may hold anything, so a value that a spreadsheet
// would run as a formula (starting with =, +, -, @, tab or carriage return)
// is written with a leading ' (as is a value starting with '); IDs, regions,
// statuses, counts and times never start with one. ReadResults undoes it.
func WriteResults(w io.Writer, jobs []store.Job) error {
	return WriteResultsSeq(w, slices.Values(jobs), hasAccounts(jobs))
}

// hasAccounts reports whether a job names an account.
func hasAccounts(jobs []store.Job) bool {
	return slices.ContainsFunc(jobs, func(j store.Job) bool { return j.Account != "" })
}

// WriteResultsSeq is WriteResults for jobs from an iterator, such as
// Store.All, so that a large run is written without holding its jobs;
// accounts adds the account column.
func WriteResultsSeq(w io.Writer, jobs iter.Seq[store.Job], accounts bool) error {
	rw := NewResultsWriter(w, accounts)
	for j := range jobs {
		if err := rw.Write(&j); err != nil {
			return err
		}
	}
	return rw.Flush()
}

// ResultsWriter writes a results CSV one job at a time, as WriteResults
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
// resultColumns in a run over several accounts.
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
	if len(row) > len(resultColumns) {
		row[11] = j.Account
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

// WriteResultsFile writes the results CSV to path atomically: into a
// temporary file in the same directory, synced, then renamed over path, and
// the directory synced, so that path holds either the old file or the whole
// new one, even after a crash.
func WriteResultsFile(path string, jobs []store.Job) error {
	return WriteResultsFileSeq(path, slices.Values(jobs), hasAccounts(jobs))
}

// WriteResultsFileSeq is WriteResultsFile for jobs from an iterator;
// accounts adds the account column.
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

// ReadResults reads a results CSV written by WriteResults. Columns are found
// by name; instance_id and status are required. Each job's ID is its line
// number. Problems are returned together as Errors, with an empty Path.
func ReadResults(r io.Reader) ([]store.Job, error) {
	br := newBoundedReader(r)
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true // as boundedReader expects; WriteResults quotes leading spaces
	cr.ReuseRecord = true

	var (
		jobs    []store.Job
		errs    Errors
		more    int
		cols    map[string]int
		nfields int
	)
	add := func(line int, field string, err error) {
		if len(errs) < maxErrors {
			errs = append(errs, &RowError{Line: line, Field: field, Err: err})
		} else {
			more++
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			add(pe.Line, "", fmt.Errorf("column %d: %w", pe.Column, pe.Err))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		line, _ := cr.FieldPos(0)
		last, _ := cr.FieldPos(len(rec) - 1)
		if cut, ok := br.claimCut(line, last+strings.Count(rec[len(rec)-1], "\n")); ok {
			add(cut, "", errLineTooLong)
			continue
		}
		if blank(rec) {
			continue
		}
		if cols == nil {
			nfields = len(rec)
			cols = make(map[string]int, len(rec))
			for i, name := range rec {
				cols[strings.ToLower(strings.TrimSpace(name))] = i
			}
			for _, name := range []string{"instance_id", "status"} {
				if _, ok := cols[name]; !ok {
					add(line, name, errors.New("missing column"))
				}
			}
			if len(errs) > 0 {
				return nil, errs
			}
			continue
		}
		if len(rec) != nfields {
			add(line, "", fmt.Errorf("wrong number of fields: %d, want %d as in the header", len(rec), nfields))
			continue
		}
		j, ok := resultJob(rec, cols, line, add)
		if ok {
			jobs = append(jobs, j)
		}
	}
	if cols == nil && len(errs) == 0 {
		add(0, "", errors.New("empty file: want a header row"))
	}
	if more > 0 {
		errs = append(errs, &RowError{Err: fmt.Errorf("%d more errors not shown", more)})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return jobs, nil
}

// resultJob decodes one row of a results CSV.
func resultJob(rec []string, cols map[string]int, line int, add func(int, string, error)) (store.Job, bool) {
	ok := true
	get := func(name string) string {
		i, found := cols[name]
		if !found {
			return ""
		}
		return restore(rec[i])
	}
	getTime := func(name string) time.Time {
		s := get(name)
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			add(line, name, fmt.Errorf("malformed time %q (want RFC 3339)", s))
			ok = false
		}
		return t
	}
	j := store.Job{
		ID:           int64(line),
		InstanceID:   get("instance_id"),
		BlueprintID:  get("blueprint_id"),
		Region:       get("region"),
		Status:       store.Status(get("status")),
		RequestID:    get("request_id"),
		ErrorCode:    get("error_code"),
		ErrorMessage: get("error_message"),
		SubmittedAt:  getTime("submitted_at"),
		FinishedAt:   getTime("finished_at"),
		// Absent in results files written before the column existed.
		PrevBlueprintID: get("previous_blueprint_id"),
		Account:         get(accountColumn),
	}
	if j.InstanceID == "" {
		add(line, "instance_id", errors.New("missing value"))
		ok = false
	}
	if !j.Status.Valid() {
		add(line, "status", fmt.Errorf("unknown status %q", j.Status))
		ok = false
	}
	if s := get("attempts"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			add(line, "attempts", fmt.Errorf("malformed count %q", s))
			ok = false
		}
		j.Attempts = n
	}
	return j, ok
}

// defuse prefixes a value that a spreadsheet would run as a formula with '.
func defuse(s string) string {
	if s != "" && strings.IndexByte(formulaTriggers, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// restore undoes defuse.
func restore(s string) string {
	if len(s) >= 2 && s[0] == '\'' && strings.IndexByte(formulaTriggers, s[1]) >= 0 {
		return s[1:]
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
