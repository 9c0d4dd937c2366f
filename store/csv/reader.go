// Package csv reads and writes batchreset's CSV files and keeps a run's crash-safe journal.
package csv

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/batchreset/batchreset/lighthouse"
	"github.com/batchreset/batchreset/store"
)

// Limits on the jobs CSV.
const (
	// maxFieldBytes caps the instance_id, blueprint_id and region values;
	// valid ones are under 30 bytes.
	maxFieldBytes = 256
	// maxErrors caps the row errors kept; the rest are only counted.
	maxErrors = 100
	// maxPresize caps the jobs ReadJobs makes room for before reading: a
	// file of junk lines must not reserve gigabytes.
	maxPresize = 1 << 20
	// maxInterned caps the distinct blueprint and region strings shared
	// between jobs; a file has a handful of each.
	maxInterned = 1024
)

// Column names of the jobs CSV, matched case-insensitively.
const (
	colInstanceID  = "instance_id"
	colBlueprintID = "blueprint_id"
	colRegion      = "region"
	colKeyIDs      = "key_ids"
	colAutoPass    = "auto_generate_password"
	colAccount     = "account"
)

// columns are the known columns, in slot order (Reader.cols).
var columns = [...]string{colInstanceID, colBlueprintID, colRegion, colKeyIDs, colAutoPass, colAccount}

// columnWords are, for each known column in slot order, words that a
// column's name (lower case, without separators) holding one of them is
// taken to mean it: "target_blueprint", "image_id", "key_pair",
// "password".
var columnWords = [...][]string{{"instance"}, {"blueprint", "image"}, {"region"}, {"key"}, {"password", "generate"}, {"account"}}

// ReadOptions say how a jobs CSV is read. The zero value takes each row's
// region from the file and refuses columns it does not know.
type ReadOptions struct {
	// DefaultRegion is the region of rows that name none; "" makes such
	// rows errors.
	DefaultRegion string
	// AllowUnknownColumns lets the file carry columns of its own (an
	// owner, notes) beside the known ones, which are then ignored. A
	// column that looks like a known one is an error even so.
	AllowUnknownColumns bool
}

var errLineTooLong = fmt.Errorf("line too long (over %d bytes)", maxRecordBytes)

// RowError is a problem with one row, or the header, of a CSV file. It prints
// as compilers print errors, for example
//
//	jobs.csv:12: blueprint_id: malformed ID "lhbp-x" (want lhbp- and 8 lowercase letters or digits)
type RowError struct {
	// Path is the file name given to ReadJobs or NewReader.
	Path string
	// Line is the physical line number in the file, counting from 1; 0 when
	// the error is about the whole file.
	Line int
	// Field is the column the error is about, "" when it is about the row.
	Field string
	// Err is what is wrong.
	Err error
}

func (e *RowError) Error() string {
	var b strings.Builder
	switch {
	case e.Path != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d", e.Path, e.Line)
	case e.Path != "":
		b.WriteString(e.Path)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d", e.Line)
	}
	if e.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *RowError) Unwrap() error { return e.Err }

// Errors is every problem found in a CSV file, in file order, one per line
// when printed. At most 100 are kept; when there were more, the last element
// has Line 0 and says how many were left out. A caller that gets Errors
// should print them and start nothing.
type Errors []*RowError

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, re := range e {
		lines[i] = re.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the row errors, so that errors.As finds the first one.
func (e Errors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, re := range e {
		errs[i] = re
	}
	return errs
}

// ReadEach reads the jobs CSV file at path as ReadJobs does, one row at a
// time: it yields each job read and then, if anything in the file is
// wrong, the problems (an Errors, or the error that stopped reading) as a
// last error. Nothing is held but the instance IDs seen, for duplicates.
func ReadEach(path string, opts ReadOptions) iter.Seq2[store.Job, error] {
	return func(yield func(store.Job, error) bool) {
		f, err := os.Open(path)
		if err != nil {
			yield(store.Job{}, fmt.Errorf("read jobs: %w", err))
			return
		}
		defer f.Close()
		r := NewReader(f, path, opts)
		for {
			j, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				yield(store.Job{}, err)
				return
			}
			if !yield(j, nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield(store.Job{}, err)
		}
	}
}

// ReadJobs reads the jobs CSV file at path; see Reader for the format. Each
// job's ID is its line number and its status is pending. If anything in the
// file is wrong ReadJobs returns no jobs and an Errors listing the problems.
// A large file is better read with ReadInput, which holds its jobs
// compactly, or ReadEach, which holds none.
func ReadJobs(path string, opts ReadOptions) ([]store.Job, error) {
	var jobs []store.Job
	for j, err := range ReadEach(path, opts) {
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// countRows returns an upper bound on the jobs in a jobs CSV, capped at
// maxPresize: the lines long enough to hold an instance ID. A job's row has
// at least one such line of its own, whatever its other columns hold.
func countRows(r io.Reader) (int, error) {
	const minLine = len("lhins-01234567")
	n, lineLen := 0, 0
	buf := make([]byte, 64<<10)
	for n < maxPresize {
		k, err := r.Read(buf)
		p := buf[:k]
		for len(p) > 0 {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				lineLen += len(p)
				break
			}
			if lineLen+i >= minLine {
				n++
			}
			lineLen, p = 0, p[i+1:]
		}
		if err == io.EOF {
			if lineLen >= minLine {
				n++
			}
			return min(n, maxPresize), nil
		}
		if err != nil {
			return 0, err
		}
	}
	return maxPresize, nil
}

// Reader reads jobs from a jobs CSV one at a time.
//
// The file starts with a header row naming its columns, matched by name
// without regard to case or surrounding spaces, in any order:
//
//   - instance_id (required): the Lighthouse instance to reset, lhins-
//     followed by 8 lowercase letters or digits (lighthouse.CheckInstanceID).
//     Each instance may appear once.
//   - blueprint_id (optional): the image to reinstall, lhbp- followed by 8
//     lowercase letters or digits; empty or absent reinstalls the instance's
//     current image.
//   - region (optional): the instance's region, such as ap-guangzhou; empty
//     or absent means the default region given to NewReader.
//   - key_ids (optional): up to 5 key pairs of the instance's region for the
//     reset to bind, lhkp- followed by 8 lowercase letters or digits,
//     separated by ";"; empty or absent leaves it to the run-wide setting.
//   - auto_generate_password (optional): yes to have the reset generate the
//     default user's password; empty, no or absent does not. A password
//     itself never goes in the file.
//   - account (optional): the account the instance is in, a name the run's
//     settings define (store.CheckAccount); empty or absent is the run's
//     own credential.
//
// A column the file names that is none of these is an error, since its
// values would otherwise be ignored and the resets would do something else
// than the file says: a "blueprint" column would reinstall every
// instance's current image. A column that looks like a known one (within
// two edits of its name, as Damerau-Levenshtein counts them, ignoring case
// and separators, or holding a word of its name, such as "instance",
// "blueprint", "image", "key" or "password") is an error naming the column
// it looks like, always; any other unknown column is ignored only when
// ReadOptions.AllowUnknownColumns says so. A UTF-8 byte order mark, CRLF line endings,
// blank lines, spaces around values and quoted fields are accepted. A line
// starting with "#" is a comment and ignored, wherever it is: `batchreset
// select` records there how the list was made, and a row commented out is
// left out. Every
// problem (a malformed or duplicate value, a row with the wrong number of
// fields, text that is not UTF-8, a line over 64 KiB) is collected as a
// RowError and the row is skipped.
//
// Most callers should use ReadJobs. Read returns only valid jobs, so a caller
// must not act on any of them until Read has returned io.EOF and Err nil.
// A Reader is not safe for concurrent use.
type Reader struct {
	name string
	opts ReadOptions
	br   *boundedReader
	cr   *csv.Reader

	started    bool
	headerLine int
	nfields    int
	cols       [len(columns)]int // index of each of columns; -1 if absent

	seen   map[[8]byte]int // instance ID suffix → line, for duplicates
	intern map[string]string

	errs []*RowError
	more int   // row errors beyond maxErrors
	done bool  // the input is exhausted: Read returns io.EOF or err
	err  error // reading the input failed
}

// Column slots in Reader.cols.
const (
	slotInstanceID = iota
	slotBlueprintID
	slotRegion
	slotKeyIDs
	slotAutoPass
	slotAccount
)

// NewReader returns a Reader that reads a jobs CSV from r, as opts say.
// name is the file name used in errors.
func NewReader(r io.Reader, name string, opts ReadOptions) *Reader {
	br := newBoundedReader(r)
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // checked against the header by Read, to report it our way
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	cr.ReuseRecord = true // values are copied out of the record
	return &Reader{
		name:   name,
		opts:   opts,
		br:     br,
		cr:     cr,
		cols:   [len(columns)]int{-1, -1, -1, -1, -1, -1},
		seen:   make(map[[8]byte]int),
		intern: make(map[string]string),
	}
}

// Read returns the next valid job. It returns io.EOF at the end of the input,
// or an error if reading the input failed. Invalid rows are skipped and their
// errors kept for Err.
func (r *Reader) Read() (store.Job, error) {
	if !r.started {
		r.started = true
		if !r.readHeader() {
			r.done = true
		}
	}
	for !r.done {
		rec, err := r.cr.Read()
		if err == io.EOF {
			r.done = true
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			r.parseError(pe)
			continue
		}
		if err != nil {
			r.fail(err)
			break
		}
		if j, ok := r.job(rec); ok {
			return j, nil
		}
	}
	if r.err != nil {
		return store.Job{}, r.err
	}
	return store.Job{}, io.EOF
}

// Err returns the problems found so far: an Errors, or the error that
// stopped reading the input, or nil.
func (r *Reader) Err() error {
	if r.err != nil {
		return r.err
	}
	if len(r.errs) == 0 {
		return nil
	}
	errs := make(Errors, len(r.errs), len(r.errs)+1)
	copy(errs, r.errs)
	if r.more > 0 {
		errs = append(errs, &RowError{Path: r.name, Err: fmt.Errorf("%d more errors not shown", r.more)})
	}
	return errs
}

func (r *Reader) fail(err error) {
	r.err = fmt.Errorf("read %s: %w", r.name, err)
	r.done = true
}

func (r *Reader) add(line int, field string, err error) {
	if len(r.errs) >= maxErrors {
		r.more++
		return
	}
	r.errs = append(r.errs, &RowError{Path: r.name, Line: line, Field: field, Err: err})
}

func (r *Reader) parseError(pe *csv.ParseError) {
	if line, ok := r.br.claimCut(pe.StartLine, pe.Line); ok {
		r.add(line, "", errLineTooLong)
		return
	}
	err := fmt.Errorf("column %d: %w", pe.Column, pe.Err)
	if pe.StartLine != pe.Line {
		err = fmt.Errorf("column %d: %w (in the record starting on line %d)", pe.Column, pe.Err, pe.StartLine)
	}
	r.add(pe.Line, "", err)
}

// span returns the lines of the record rec that encoding/csv just returned,
// and reports whether one of them was cut short for being too long.
func (r *Reader) span(rec []string) (first int, tooLong bool) {
	first, _ = r.cr.FieldPos(0)
	last, _ := r.cr.FieldPos(len(rec) - 1)
	last += strings.Count(rec[len(rec)-1], "\n") // a quoted field may span lines
	if line, ok := r.br.claimCut(first, last); ok {
		r.add(line, "", errLineTooLong)
		return first, true
	}
	return first, false
}

// readHeader reads the header row and reports whether rows may follow.
func (r *Reader) readHeader() bool {
	for {
		rec, err := r.cr.Read()
		if err == io.EOF {
			r.add(0, "", errors.New("empty file: want a header row naming an instance_id column"))
			return false
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			r.parseError(pe)
			return false
		}
		if err != nil {
			r.fail(err)
			return false
		}
		line, tooLong := r.span(rec)
		if tooLong {
			return false
		}
		if blank(rec) {
			continue
		}
		r.headerLine, r.nfields = line, len(rec)
		// Two ways a spreadsheet saves something that is not quite CSV.
		if len(rec) == 1 && strings.ContainsAny(rec[0], "\t;") {
			r.add(line, "", errors.New("header: fields separated by tabs or semicolons, want commas"))
			return false
		}
		if slices.ContainsFunc(rec, func(f string) bool { return strings.Contains(f, "\r") }) {
			r.add(line, "", errors.New("header: lines end in bare carriage returns (save the file as CSV UTF-8)"))
			return false
		}
		ok := true
		names := make([]string, len(rec))
		var unknown []int // columns of rec that are no known column
		for i, raw := range rec {
			if err := checkText(raw); err != nil {
				r.add(line, "", fmt.Errorf("header: %w", err))
				return false
			}
			names[i] = strings.ToLower(strings.TrimSpace(raw))
			slot := slices.Index(columns[:], names[i])
			if slot < 0 {
				unknown = append(unknown, i)
				continue
			}
			if prev := r.cols[slot]; prev >= 0 {
				r.add(line, names[i], fmt.Errorf("duplicate column (columns %d and %d)", prev+1, i+1))
				ok = false
				continue
			}
			r.cols[slot] = i
		}
		hasID, saidID := r.cols[slotInstanceID] >= 0, false
		for _, i := range unknown {
			field := strings.TrimSpace(rec[i])
			slot := meantColumn(names[i])
			if slot == slotInstanceID && hasID {
				// instance_id is there, and required in every row: a
				// column like "instance_name" beside it changes nothing
				// a reset does.
				slot = -1
			}
			switch {
			case slot >= 0:
				r.add(line, field, fmt.Errorf("unknown column: did you mean %s? (a column that looks like a known one is never ignored: rename it)", columns[slot]))
				ok = false
				saidID = saidID || slot == slotInstanceID
			case hasID && !r.opts.AllowUnknownColumns:
				// Without instance_id, the missing column's error below
				// lists the header.
				r.add(line, field, fmt.Errorf("unknown column (the columns are %s; a file that carries other data is read with --allow-unknown-columns)", strings.Join(columns[:], ", ")))
				ok = false
			}
		}
		if !hasID && !saidID {
			r.add(line, colInstanceID, fmt.Errorf("missing column (header has %s)", quoteList(names, 10)))
			ok = false
		}
		return ok
	}
}

// meantColumn returns the slot of the known column that name, a column's
// name in lower case that is no known column, looks like, or -1: within
// two edits of one (the nearest, the first of equals), case, spaces and
// separators aside, or else holding one of its columnWords.
func meantColumn(name string) int {
	flat := squash(name)
	best, bestDist := -1, 3
	for slot, col := range columns {
		d := min(editDistance(name, col, bestDist), editDistance(flat, squash(col), bestDist))
		if d < bestDist {
			best, bestDist = slot, d
		}
	}
	if best >= 0 {
		return best
	}
	for slot, words := range columnWords {
		for _, w := range words {
			if strings.Contains(flat, w) {
				return slot
			}
		}
	}
	return -1
}

// squash returns s without what is not a letter or a digit: "Blueprint ID",
// "blueprint-id" and "blueprintid" squash alike.
func squash(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s)
}

// editDistance returns the Damerau-Levenshtein distance between a and b
// (insertions, deletions, substitutions and transpositions of adjacent
// runes, each substring edited once), or limit when it is limit or more.
func editDistance(a, b string, limit int) int {
	s, t := []rune(a), []rune(b)
	if d := len(s) - len(t); d >= limit || -d >= limit {
		return limit
	}
	// prev2, prev and cur are rows i-2, i-1 and i of the distance table.
	prev2, prev, cur := make([]int, len(t)+1), make([]int, len(t)+1), make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(t)], limit)
}

// job validates one record and returns it as a job, or records why not.
func (r *Reader) job(rec []string) (store.Job, bool) {
	line, tooLong := r.span(rec)
	if tooLong || blank(rec) {
		return store.Job{}, false
	}
	if len(rec) != r.nfields {
		r.add(line, "", fmt.Errorf("wrong number of fields: %d, want %d as in the header on line %d",
			len(rec), r.nfields, r.headerLine))
		return store.Job{}, false
	}

	ok := true
	id, idLine, err := r.value(rec, slotInstanceID)
	switch {
	case err != nil:
	case id == "":
		err = errors.New("missing value")
	default:
		err = lighthouse.CheckInstanceID(id)
	}
	if err == nil {
		var key [8]byte
		copy(key[:], id[len(lighthouse.InstanceIDPrefix):])
		if prev, dup := r.seen[key]; dup {
			err = fmt.Errorf("duplicate %s (first on line %d)", id, prev)
		} else {
			r.seen[key] = idLine
		}
	}
	if err != nil {
		r.add(idLine, colInstanceID, err)
		ok = false
	}

	bp, bpLine, err := r.value(rec, slotBlueprintID)
	if err == nil && bp != "" && !validID(bp, "lhbp-") {
		err = fmt.Errorf("malformed ID %q (want lhbp- and 8 lowercase letters or digits)", bp)
	}
	if err != nil {
		r.add(bpLine, colBlueprintID, err)
		ok = false
	}

	region, regionLine, err := r.value(rec, slotRegion)
	switch {
	case err != nil:
	case region == "" && r.opts.DefaultRegion == "":
		err = errors.New("missing value and no default region given")
	case region == "" && !validRegion(r.opts.DefaultRegion):
		err = fmt.Errorf("malformed default region %q (want lowercase like ap-guangzhou)", r.opts.DefaultRegion)
	case region == "":
		region = r.opts.DefaultRegion
	case !validRegion(region):
		err = fmt.Errorf("malformed region %q (want lowercase like ap-guangzhou)", region)
	}
	if err != nil {
		r.add(regionLine, colRegion, err)
		ok = false
	}

	keys, keysLine, err := r.value(rec, slotKeyIDs)
	var keyIDs []string
	if err == nil && keys != "" {
		keyIDs, err = parseKeyIDs(keys)
	}
	if err != nil {
		r.add(keysLine, colKeyIDs, err)
		ok = false
	}

	auto, autoLine, err := r.value(rec, slotAutoPass)
	var autoPass bool
	if err == nil {
		autoPass, err = parseYesNo(auto)
	}
	if err == nil && autoPass && len(keyIDs) > 0 {
		err = errors.New("yes together with key_ids: a reset takes key pairs or a generated password, not both")
	}
	if err != nil {
		r.add(autoLine, colAutoPass, err)
		ok = false
	}

	account, accountLine, err := r.value(rec, slotAccount)
	if err == nil && account != "" {
		err = store.CheckAccount(account)
	}
	if err != nil {
		r.add(accountLine, colAccount, err)
		ok = false
	}

	if !ok {
		return store.Job{}, false
	}
	return store.Job{
		ID:                   int64(line),
		InstanceID:           strings.Clone(id), // not pinning the whole record
		BlueprintID:          r.share(bp),
		Region:               r.share(region),
		Account:              r.share(account),
		KeyIDs:               keyIDs,
		AutoGeneratePassword: autoPass,
		Status:               store.StatusPending,
	}, true
}

// parseKeyIDs reads a key_ids value: distinct key pair IDs separated by ";".
func parseKeyIDs(s string) ([]string, error) {
	var ids []string
	for _, id := range strings.Split(s, store.KeyIDSeparator) {
		id = strings.TrimSpace(id)
		switch {
		case !validID(id, "lhkp-"):
			return nil, fmt.Errorf("malformed key pair ID %q (want lhkp- and 8 lowercase letters or digits, separated by %q)", id, store.KeyIDSeparator)
		case slices.Contains(ids, id):
			return nil, fmt.Errorf("duplicate key pair %s", id)
		}
		ids = append(ids, id)
	}
	if len(ids) > store.MaxKeyIDs {
		return nil, fmt.Errorf("%d key pairs, at most %d", len(ids), store.MaxKeyIDs)
	}
	return ids, nil
}

// parseYesNo reads a yes/no value; empty is no.
func parseYesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "", "no", "false":
		return false, nil
	case "yes", "true":
		return true, nil
	}
	return false, fmt.Errorf("%q: want yes or no", s)
}

// value returns the trimmed value in column slot of rec ("" if the column is
// absent), the line it starts on, and what is wrong with it as text.
func (r *Reader) value(rec []string, slot int) (string, int, error) {
	i := r.cols[slot]
	if i < 0 {
		line, _ := r.cr.FieldPos(0)
		return "", line, nil
	}
	line, _ := r.cr.FieldPos(i)
	v := strings.TrimSpace(rec[i])
	if len(v) > maxFieldBytes {
		return "", line, fmt.Errorf("too long (%d bytes, max %d)", len(v), maxFieldBytes)
	}
	if err := checkText(v); err != nil {
		return "", line, err
	}
	return v, line, nil
}

// share returns s, or an equal string already held by another job, so that
// jobs do not each hold their own copy of a region or blueprint.
func (r *Reader) share(s string) string {
	if s == "" {
		return ""
	}
	if t, ok := r.intern[s]; ok {
		return t
	}
	s = strings.Clone(s)
	if len(r.intern) < maxInterned {
		r.intern[s] = s
	}
	return s
}

// checkText reports a value that is not text: invalid UTF-8, or control
// characters, which is what a binary file or a wrong encoding looks like.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("invalid UTF-8 (save the file as CSV UTF-8)")
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("binary data (control character %U)", r)
	}
	return nil
}

// blank reports whether every field of rec is empty or spaces, as in a blank
// line or a spreadsheet's empty row ",,".
func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// quoteList formats up to n names for a message.
func quoteList(names []string, n int) string {
	var b strings.Builder
	for i, s := range names {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(names)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		fmt.Fprintf(&b, "%q", s)
	}
	return b.String()
}

// validID reports whether s is prefix followed by 8 lowercase ASCII letters or
// digits, as in ^lhins-[a-z0-9]{8}$.
func validID(s, prefix string) bool {
	if len(s) != len(prefix)+8 || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		if !isLower(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// validRegion reports whether s matches ^[a-z]{2,4}-[a-z]+(-[a-z0-9]+)*$, the
// shape of Tencent Cloud region IDs such as ap-guangzhou, ap-shanghai-fsi and
// na-siliconvalley.
func validRegion(s string) bool {
	i := 0
	for i < len(s) && isLower(s[i]) {
		i++
	}
	if i < 2 || i > 4 || i == len(s) || s[i] != '-' {
		return false
	}
	i++
	start := i
	for i < len(s) && isLower(s[i]) {
		i++
	}
	if i == start {
		return false
	}
	for i < len(s) {
		if s[i] != '-' {
			return false
		}
		i++
		start = i
		for i < len(s) && (isLower(s[i]) || isDigit(s[i])) {
			i++
		}
		if i == start {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
