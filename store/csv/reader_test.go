package csv_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batchreset/batchreset/store"
	"github.com/batchreset/batchreset/store/csv"
)

// readString reads a jobs CSV held in a string, as ReadJobs reads a file
// named jobs.csv, unknown columns allowed (TestReaderColumns has the rule).
func readString(t testing.TB, content, defaultRegion string) ([]store.Job, error) {
	t.Helper()
	r := csv.NewReader(strings.NewReader(content), "jobs.csv", csv.ReadOptions{DefaultRegion: defaultRegion, AllowUnknownColumns: true})
	var jobs []store.Job
	for {
		j, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return jobs, nil
}

func pending(line int64, instance, blueprint, region string) store.Job {
	return store.Job{ID: line, InstanceID: instance, BlueprintID: blueprint, Region: region, Status: store.StatusPending}
}

func TestReaderFormats(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name          string
		content       string
		defaultRegion string
		want          []store.Job
	}{
		{
			name: "Basic",
			content: "instance_id,blueprint_id,region\n" +
				"lhins-aaaaaaaa,lhbp-bbbbbbbb,ap-guangzhou\n" +
				"lhins-cccccccc,,ap-shanghai-fsi\n",
			want: []store.Job{
				pending(2, "lhins-aaaaaaaa", "lhbp-bbbbbbbb", "ap-guangzhou"),
				pending(3, "lhins-cccccccc", "", "ap-shanghai-fsi"),
			},
		},
		{
			name:    "ByteOrderMark",
			content: "\ufeffinstance_id,region\nlhins-aaaaaaaa,na-siliconvalley\n",
			want:    []store.Job{pending(2, "lhins-aaaaaaaa", "", "na-siliconvalley")},
		},
		{
			name:    "CRLF",
			content: "instance_id,region\r\nlhins-aaaaaaaa,ap-guangzhou\r\nlhins-bbbbbbbb,ap-beijing\r\n",
			want: []store.Job{
				pending(2, "lhins-aaaaaaaa", "", "ap-guangzhou"),
				pending(3, "lhins-bbbbbbbb", "", "ap-beijing"),
			},
		},
		{
			name: "BlankLines",
			content: "\n\r\ninstance_id,region\n\n" +
				"lhins-aaaaaaaa,ap-guangzhou\n" +
				"   \n" +
				",\n" +
				" , \t\n" +
				"lhins-bbbbbbbb,ap-beijing\n\n\n",
			want: []store.Job{
				pending(5, "lhins-aaaaaaaa", "", "ap-guangzhou"),
				pending(9, "lhins-bbbbbbbb", "", "ap-beijing"),
			},
		},
		{
			name:    "Spaces",
			content: "  Instance_ID ,\tREGION  , Blueprint_Id\n  lhins-aaaaaaaa ,  ap-guangzhou\t,  lhbp-bbbbbbbb  \n",
			want:    []store.Job{pending(2, "lhins-aaaaaaaa", "lhbp-bbbbbbbb", "ap-guangzhou")},
		},
		{
			name: "Quotes",
			content: `"instance_id","blueprint_id","region"` + "\n" +
				`"lhins-aaaaaaaa", "lhbp-bbbbbbbb" ,"ap-guangzhou"` + "\n" +
				`lhins-cccccccc,"",ap-guangzhou` + "\n",
			want: []store.Job{
				pending(2, "lhins-aaaaaaaa", "lhbp-bbbbbbbb", "ap-guangzhou"),
				pending(3, "lhins-cccccccc", "", "ap-guangzhou"),
			},
		},
		{
			name: "IgnoredColumns",
			content: "owner,instance_id,notes,region,ticket\n" +
				`ops,lhins-aaaaaaaa,"web, primary",ap-guangzhou,lhbp-zzzzzzzz` + "\n" +
				`ops,lhins-bbbbbbbb,"two` + "\r\n" + `lines, ""quoted""",ap-guangzhou,` + "\n" +
				"dba,lhins-cccccccc,,ap-guangzhou,=cmd()\n",
			want: []store.Job{
				pending(2, "lhins-aaaaaaaa", "", "ap-guangzhou"),
				pending(3, "lhins-bbbbbbbb", "", "ap-guangzhou"),
				pending(5, "lhins-cccccccc", "", "ap-guangzhou"),
			},
		},
		{
			name: "DefaultRegion",
			content: "instance_id,region\n" +
				"lhins-aaaaaaaa,\n" +
				"lhins-bbbbbbbb,ap-beijing\n",
			defaultRegion: "ap-guangzhou",
			want: []store.Job{
				pending(2, "lhins-aaaaaaaa", "", "ap-guangzhou"),
				pending(3, "lhins-bbbbbbbb", "", "ap-beijing"),
			},
		},
		{
			name:          "NoRegionColumn",
			content:       "instance_id\nlhins-aaaaaaaa\n",
			defaultRegion: "ap-guangzhou",
			want:          []store.Job{pending(2, "lhins-aaaaaaaa", "", "ap-guangzhou")},
		},
		{
			name:    "NoFinalLineBreak",
			content: "instance_id,region\nlhins-aaaaaaaa,ap-guangzhou",
			want:    []store.Job{pending(2, "lhins-aaaaaaaa", "", "ap-guangzhou")},
		},
		{
			name:    "HeaderOnly",
			content: "instance_id,region\n",
			want:    nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readString(t, tt.content, tt.defaultRegion)
			if err != nil {
				t.Fatalf("read %q: %v", tt.content, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("read %q: jobs mismatch (-want +got):\n%s", tt.content, diff)
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()

	const header = "instance_id,blueprint_id,region\n"
	tests := []struct {
		name          string
		content       string
		defaultRegion string
		want          string
	}{
		{
			name:    "Empty",
			content: "",
			want:    "jobs.csv: empty file: want a header row naming an instance_id column",
		},
		{
			name:    "OnlyBlankLines",
			content: "\n\n , \n",
			want:    "jobs.csv: empty file: want a header row naming an instance_id column",
		},
		{
			name:    "MissingColumn",
			content: "id,blueprint_id,region\nlhins-aaaaaaaa,,ap-guangzhou\n",
			want:    `jobs.csv:1: instance_id: missing column (header has "id", "blueprint_id", "region")`,
		},
		{
			name:    "DuplicateColumn",
			content: "instance_id,region,Region\n",
			want:    `jobs.csv:1: region: duplicate column (columns 2 and 3)`,
		},
		{
			name:    "MissingValue",
			content: header + " ,,ap-guangzhou\n",
			want:    `jobs.csv:2: instance_id: missing value`,
		},
		{
			name:    "MalformedInstanceID",
			content: header + "lhins-ABCDEFGH,,ap-guangzhou\nlhins-abc,,ap-guangzhou\nins-aaaaaaaa,,ap-guangzhou\n",
			want: `jobs.csv:2: instance_id: malformed ID "lhins-ABCDEFGH" (want lhins- and 8 lowercase letters or digits)` + "\n" +
				`jobs.csv:3: instance_id: malformed ID "lhins-abc" (want lhins- and 8 lowercase letters or digits)` + "\n" +
				`jobs.csv:4: instance_id: malformed ID "ins-aaaaaaaa" (want lhins- and 8 lowercase letters or digits)`,
		},
		{
			name: "MalformedBlueprintID",
			content: header + strings.Repeat("\n", 10) +
				"lhins-aaaaaaaa,lhbp-x,ap-guangzhou\n",
			want: `jobs.csv:12: blueprint_id: malformed ID "lhbp-x" (want lhbp- and 8 lowercase letters or digits)`,
		},
		{
			name:    "MalformedRegion",
			content: header + "lhins-aaaaaaaa,,AP-Guangzhou\nlhins-bbbbbbbb,,guangzhou\nlhins-cccccccc,,ap-\n",
			want: `jobs.csv:2: region: malformed region "AP-Guangzhou" (want lowercase like ap-guangzhou)` + "\n" +
				`jobs.csv:3: region: malformed region "guangzhou" (want lowercase like ap-guangzhou)` + "\n" +
				`jobs.csv:4: region: malformed region "ap-" (want lowercase like ap-guangzhou)`,
		},
		{
			name:    "NoRegion",
			content: header + "lhins-aaaaaaaa,,\n",
			want:    `jobs.csv:2: region: missing value and no default region given`,
		},
		{
			name:          "MalformedDefaultRegion",
			content:       "instance_id\nlhins-aaaaaaaa\n",
			defaultRegion: "Guangzhou",
			want:          `jobs.csv:2: region: malformed default region "Guangzhou" (want lowercase like ap-guangzhou)`,
		},
		{
			name:    "Duplicate",
			content: header + "lhins-aaaaaaaa,,ap-guangzhou\nlhins-bbbbbbbb,,ap-guangzhou\n lhins-aaaaaaaa ,,ap-beijing\n",
			want:    `jobs.csv:4: instance_id: duplicate lhins-aaaaaaaa (first on line 2)`,
		},
		{
			name:    "FieldTooLong",
			content: header + "lhins-aaaaaaaa," + strings.Repeat("b", 300) + ",ap-guangzhou\n",
			want:    `jobs.csv:2: blueprint_id: too long (300 bytes, max 256)`,
		},
		{
			name:          "LineTooLong",
			content:       "instance_id,notes\nlhins-aaaaaaaa,ok\nlhins-bbbbbbbb," + strings.Repeat("x", 100_000) + "\nlhins-cccccccc,\n",
			defaultRegion: "ap-guangzhou",
			want:          `jobs.csv:3: line too long (over 65536 bytes)`,
		},
		{
			name: "QuotedFieldTooLong",
			content: "instance_id,notes\nlhins-aaaaaaaa,\"" + strings.Repeat(", , , , ,\n", 7000) +
				"end\"\nlhins-bbbbbbbb,\n",
			// The cut comes where the record passes 64 KiB; the lines after it
			// are read as rows, blank but for the last.
			defaultRegion: "ap-guangzhou",
			want: `jobs.csv:6554: line too long (over 65536 bytes)` + "\n" +
				`jobs.csv:7002: column 4: bare " in non-quoted-field`,
		},
		{
			name:    "InvalidUTF8",
			content: header + "lhins-aaaaaaaa,,ap-\xff\xfe\n",
			want:    `jobs.csv:2: region: invalid UTF-8 (save the file as CSV UTF-8)`,
		},
		{
			name:    "BinaryValue",
			content: header + "lhins-aa\x00\x01aaaa,,ap-guangzhou\n",
			want:    `jobs.csv:2: instance_id: binary data (control character U+0000)`,
		},
		{
			name:    "BinaryFile",
			content: "PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",
			want:    `jobs.csv:1: header: binary data (control character U+0003)`,
		},
		{
			name:    "UTF16",
			content: "\xff\xfei\x00n\x00s\x00t\x00\n\x00",
			want:    `jobs.csv:1: header: invalid UTF-8 (save the file as CSV UTF-8)`,
		},
		{
			name:    "Semicolons",
			content: "instance_id;region\nlhins-aaaaaaaa;ap-guangzhou\n",
			want:    `jobs.csv:1: header: fields separated by tabs or semicolons, want commas`,
		},
		{
			name:    "Tabs",
			content: "instance_id\tregion\nlhins-aaaaaaaa\tap-guangzhou\n",
			want:    `jobs.csv:1: header: fields separated by tabs or semicolons, want commas`,
		},
		{
			name:    "OldMacLineBreaks",
			content: "instance_id,region\rlhins-aaaaaaaa,ap-guangzhou\r",
			want:    `jobs.csv:1: header: lines end in bare carriage returns (save the file as CSV UTF-8)`,
		},
		{
			name:    "WrongFieldCount",
			content: header + "lhins-aaaaaaaa,ap-guangzhou\nlhins-bbbbbbbb,,ap-guangzhou,extra\n",
			want: `jobs.csv:2: wrong number of fields: 2, want 3 as in the header on line 1` + "\n" +
				`jobs.csv:3: wrong number of fields: 4, want 3 as in the header on line 1`,
		},
		{
			name:    "BareQuote",
			content: header + "lhins-aa\"aaaaaa,,ap-guangzhou\nlhins-bbbbbbbb,,ap-guangzhou\n",
			want:    `jobs.csv:2: column 9: bare " in non-quoted-field`,
		},
		{
			name:    "UnclosedQuote",
			content: header + "lhins-aaaaaaaa,,ap-guangzhou\n\"lhins-bbbbbbbb,,ap-guangzhou\nlhins-cccccccc,,ap-guangzhou\n",
			want:    `jobs.csv:4: column 30: extraneous or missing " in quoted-field (in the record starting on line 3)`,
		},
		{
			name:    "SeveralInOneRow",
			content: header + "lhins-aaaaaaa,lhbp-bbbbbbbbb,ap_guangzhou\n",
			want: `jobs.csv:2: instance_id: malformed ID "lhins-aaaaaaa" (want lhins- and 8 lowercase letters or digits)` + "\n" +
				`jobs.csv:2: blueprint_id: malformed ID "lhbp-bbbbbbbbb" (want lhbp- and 8 lowercase letters or digits)` + "\n" +
				`jobs.csv:2: region: malformed region "ap_guangzhou" (want lowercase like ap-guangzhou)`,
		},
		{
			name:          "FieldOnLaterLine",
			content:       "notes,instance_id\n\"a\nb\",lhins-x\n",
			defaultRegion: "ap-guangzhou",
			want:          `jobs.csv:3: instance_id: malformed ID "lhins-x" (want lhins- and 8 lowercase letters or digits)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jobs, err := readString(t, tt.content, tt.defaultRegion)
			if err == nil {
				t.Fatalf("read %.80q = %v, nil; want error %q", tt.content, jobs, tt.want)
			}
			var errs csv.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("read %.80q: error %T %v, want csv.Errors", tt.content, err, err)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("read %.80q: error mismatch (-want +got):\n%s", tt.content, diff)
			}
		})
	}
}

func TestReaderStreams(t *testing.T) {
	t.Parallel()

	content := "instance_id,region\nlhins-aaaaaaaa,ap-guangzhou\nbad,ap-guangzhou\nlhins-bbbbbbbb,ap-beijing\n"
	r := csv.NewReader(strings.NewReader(content), "jobs.csv", csv.ReadOptions{})
	var got []store.Job
	for {
		j, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read() = %v", err)
		}
		got = append(got, j)
	}
	want := []store.Job{
		pending(2, "lhins-aaaaaaaa", "", "ap-guangzhou"),
		pending(4, "lhins-bbbbbbbb", "", "ap-beijing"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read() jobs mismatch (-want +got):\n%s", diff)
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("Read() after the end = %v, want io.EOF", err)
	}
	var re *csv.RowError
	if err := r.Err(); !errors.As(err, &re) || re.Line != 3 || re.Field != "instance_id" {
		t.Errorf("Err() = %v, want a RowError on line 3, field instance_id", err)
	}
}

func TestReaderManyErrors(t *testing.T) {
	t.Parallel()

	var b strings.Builder
	b.WriteString("instance_id,region\n")
	for range 250 {
		b.WriteString("nope,ap-guangzhou\n")
	}
	_, err := readString(t, b.String(), "")
	var errs csv.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("read: error %v, want csv.Errors", err)
	}
	if len(errs) != 101 {
		t.Fatalf("read: %d errors, want 100 and a summary", len(errs))
	}
	if got, want := errs[99].Error(), `jobs.csv:101: instance_id: malformed ID "nope" (want lhins- and 8 lowercase letters or digits)`; got != want {
		t.Errorf("errs[99] = %q, want %q", got, want)
	}
	if got, want := errs[100].Error(), "jobs.csv: 150 more errors not shown"; got != want {
		t.Errorf("errs[100] = %q, want %q", got, want)
	}
}

func TestReadJobs(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.csv")
	if err := os.WriteFile(path, []byte("instance_id\nlhins-aaaaaaaa\nlhins-bad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := csv.ReadJobs(path, csv.ReadOptions{DefaultRegion: "ap-guangzhou"})
	want := path + `:3: instance_id: malformed ID "lhins-bad" (want lhins- and 8 lowercase letters or digits)`
	if err == nil || err.Error() != want {
		t.Errorf("ReadJobs(%q) = %v, want %q", path, err, want)
	}

	_, err = csv.ReadJobs(filepath.Join(dir, "missing.csv"), csv.ReadOptions{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadJobs(missing) = %v, want os.ErrNotExist", err)
	}
}

// writeJobsFile writes a valid jobs CSV of n rows to path.
func writeJobsFile(tb testing.TB, path string, n int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	writeJobs(w, n)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// writeJobs writes a valid jobs CSV of n rows to w.
func writeJobs(w io.Writer, n int) {
	regions := []string{"ap-guangzhou", "ap-shanghai", "ap-beijing", "na-siliconvalley"}
	io.WriteString(w, "instance_id,blueprint_id,region,owner\n")
	var line []byte
	for i := range n {
		line = append(line[:0], "lhins-"...)
		line = append(line, fmt.Appendf(nil, "%08x", i)...)
		line = append(line, ',')
		if i%3 == 0 {
			line = append(line, "lhbp-0a1b2c3d"...)
		}
		line = append(line, ',')
		line = append(line, regions[i%len(regions)]...)
		line = append(line, ",team-"...)
		line = strconv.AppendInt(line, int64(i%7), 10)
		line = append(line, '\n')
		w.Write(line)
	}
}

// TestReadJobsMillionRows reads a million rows, or a hundred thousand under
// the race detector, which makes it ten times slower.
func TestReadJobsMillionRows(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes and reads a 50 MB file")
	}

	n := 1_000_000
	if csv.RaceEnabled {
		n = 100_000
	}
	path := filepath.Join(t.TempDir(), "jobs.csv")
	writeJobsFile(t, path, n)

	jobs, err := csv.ReadJobs(path, csv.ReadOptions{AllowUnknownColumns: true})
	if err != nil {
		t.Fatalf("ReadJobs(%d rows) = %v", n, err)
	}
	if len(jobs) != n {
		t.Fatalf("ReadJobs(%d rows) returned %d jobs", n, len(jobs))
	}
	for i := range jobs {
		if jobs[i].ID != int64(i+2) {
			t.Fatalf("jobs[%d] is from line %d, want %d", i, jobs[i].ID, i+2)
		}
	}
	want := pending(int64(n+1), fmt.Sprintf("lhins-%08x", n-1), "lhbp-0a1b2c3d", "na-siliconvalley") // n-1 is a multiple of 3
	if diff := cmp.Diff(want, jobs[n-1]); diff != "" {
		t.Errorf("last job mismatch (-want +got):\n%s", diff)
	}
}

// hugeField yields a jobs CSV whose third line holds one 10 MB field, made up
// as it is read so that the test measures the Reader's memory alone.
type hugeField struct {
	parts []string
	n     int // bytes of the field still to produce
}

func (h *hugeField) Read(p []byte) (int, error) {
	if len(h.parts) == 0 {
		return 0, io.EOF
	}
	if h.parts[0] == "" {
		if h.n == 0 {
			h.parts = h.parts[1:]
			return 0, nil
		}
		k := min(len(p), h.n)
		for i := range k {
			p[i] = 'x'
		}
		h.n -= k
		return k, nil
	}
	k := copy(p, h.parts[0])
	h.parts[0] = h.parts[0][k:]
	if h.parts[0] == "" {
		h.parts = h.parts[1:]
	}
	return k, nil
}

// TestReaderHugeField is not parallel: it measures allocation, which other
// tests running at the same time would inflate.
func TestReaderHugeField(t *testing.T) {
	for _, quoted := range []bool{false, true} {
		t.Run(fmt.Sprintf("Quoted=%t", quoted), func(t *testing.T) {
			open, close := "", ""
			if quoted {
				open, close = `"`, `"`
			}
			src := &hugeField{
				parts: []string{"instance_id,notes\nlhins-aaaaaaaa,ok\nlhins-bbbbbbbb," + open, "", close + "\nlhins-cccccccc,\n"},
				n:     10 << 20,
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := csv.NewReader(src, "jobs.csv", csv.ReadOptions{DefaultRegion: "ap-guangzhou", AllowUnknownColumns: true})
			var ids []string
			for {
				j, err := r.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Read() = %v", err)
				}
				ids = append(ids, j.InstanceID)
			}
			runtime.ReadMemStats(&after)

			if diff := cmp.Diff([]string{"lhins-aaaaaaaa", "lhins-cccccccc"}, ids); diff != "" {
				t.Errorf("jobs read mismatch (-want +got):\n%s", diff)
			}
			if got, want := fmt.Sprint(r.Err()), "jobs.csv:3: line too long (over 65536 bytes)"; got != want {
				t.Errorf("Err() = %q, want %q", got, want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
				t.Errorf("reading a 10 MB field allocated %d bytes, want under 2 MiB", alloc)
			}
		})
	}
}

func BenchmarkReader(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			var buf bytes.Buffer
			writeJobs(&buf, n)
			data := buf.Bytes()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r := csv.NewReader(bytes.NewReader(data), "jobs.csv", csv.ReadOptions{AllowUnknownColumns: true})
				rows := 0
				for {
					_, err := r.Read()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					rows++
				}
				if err := r.Err(); err != nil || rows != n {
					b.Fatalf("read %d rows, err %v; want %d", rows, err, n)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// TestReadEach: the rows come one at a time, then the file's problems as
// the last error, every one of them named by line.
func TestReadEach(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.csv")
	body := "instance_id,region\nlhins-aaaaaaaa,ap-guangzhou\nlhins-aaaaaaaa,ap-guangzhou\nlhins-bad,ap-guangzhou\nlhins-bbbbbbbb,ap-guangzhou\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var last error
	for j, err := range csv.ReadEach(path, csv.ReadOptions{}) {
		if err != nil {
			last = err
			continue
		}
		ids = append(ids, j.InstanceID)
	}
	if len(ids) == 0 || ids[0] != "lhins-aaaaaaaa" {
		t.Errorf("rows = %v, want the valid ones first", ids)
	}
	if last == nil || !strings.Contains(last.Error(), "jobs.csv:3: instance_id: duplicate") || !strings.Contains(last.Error(), "jobs.csv:4: instance_id: malformed") {
		t.Errorf("last error = %v, want both problems by line", last)
	}
	for _, err := range csv.ReadEach(filepath.Join(t.TempDir(), "none.csv"), csv.ReadOptions{}) {
		if err == nil {
			t.Error("ReadEach of a missing file yielded a job")
		}
	}
}
