package csv

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
)

// The patterns the hand-written validators implement.
var (
	instancePattern  = regexp.MustCompile(`^lhins-[a-z0-9]{8}$`)
	blueprintPattern = regexp.MustCompile(`^lhbp-[a-z0-9]{8}$`)
	regionPattern    = regexp.MustCompile(`^[a-z]{2,4}-[a-z]+(-[a-z0-9]+)*$`)
)

func TestValidatorsMatchPatterns(t *testing.T) {
	t.Parallel()

	inputs := []string{
		"", "lhins-", "lhins-aaaaaaaa", "lhins-0a1b2c3d", "lhins-aaaaaaa", "lhins-aaaaaaaaa",
		"lhins-AAAAAAAA", "lhins-aaaa_aaa", "LHINS-aaaaaaaa", "lhins_aaaaaaaa", "lhins-aaaaaaa\n",
		"lhbp-aaaaaaaa", "lhbp-12345678", "lhbp-1234567", "lhbp-123456789", "lhbp-ééééé",
		"ap-guangzhou", "ap-shanghai-fsi", "na-siliconvalley", "eu-frankfurt", "ap-beijing-1",
		"a-b", "ab-c", "abcd-e", "abcde-f", "ab-", "ab--c", "ab-c-", "ab-c-1", "ab-1", "ab-c-1a-b2",
		"AP-guangzhou", "ap-Guangzhou", "ap guangzhou", "ap-guangzhou ", "-ap-guangzhou", "ap",
	}
	for _, s := range inputs {
		if got, want := validID(s, "lhins-"), instancePattern.MatchString(s); got != want {
			t.Errorf("validID(%q, lhins-) = %t, want %t", s, got, want)
		}
		if got, want := validID(s, "lhbp-"), blueprintPattern.MatchString(s); got != want {
			t.Errorf("validID(%q, lhbp-) = %t, want %t", s, got, want)
		}
		if got, want := validRegion(s), regionPattern.MatchString(s); got != want {
			t.Errorf("validRegion(%q) = %t, want %t", s, got, want)
		}
	}
}

func TestBoundedReaderPassesThrough(t *testing.T) {
	t.Parallel()

	tests := []struct{ in, want string }{
		{"a,b\nc,d\n", "a,b\nc,d\n"},
		{"\ufeffa,b\r\n", "a,b\r\n"},
		{"a,\"b\nc\",d\n\"e\"\"f\"\n", "a,\"b\nc\",d\n\"e\"\"f\"\n"},
		{"\"a\" , \"b\"\t\r\n\"c\"  \n", "\"a\", \"b\"\r\n\"c\"\n"},
		{"x\"a\" ,b\n", "x\"a\" ,b\n"},      // a bare quote: left for encoding/csv to report
		{"\"a\" b,c\n", "\"a\" b,c\n"},      // a stray quote: likewise
		{"\"a\",\"b\" \n", "\"a\",\"b\"\n"}, // spaces at the end of a line
	}
	for _, tt := range tests {
		got, err := io.ReadAll(newBoundedReader(strings.NewReader(tt.in)))
		if err != nil || string(got) != tt.want {
			t.Errorf("boundedReader(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzScan checks that boundedReader ends records where encoding/csv does,
// which is what makes its cuts land on the right lines.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"a,b\nc,d\n", "a,\"b\nc\",d\n", "\"a\"\"\n\"\nx\n", "\"a\" b\nc\n", "a\"b,\"c\nd\n",
		" \"a\"\n", "\u00a0\"a\nb\"\n", "\"a\"\r\nb\n", "\"a\"\rb\n\"c\n", "\"\n\n\"\n",
		"\"a\" ,b\n\"c\"\t\n", "\"a\nb\" \n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > maxRecordBytes/2 {
			return
		}
		// The lines on which boundedReader sees records end.
		br := newBoundedReader(strings.NewReader(in))
		out, err := io.ReadAll(br)
		if err != nil {
			t.Fatal(err)
		}
		if len(br.cut) > 0 {
			t.Fatalf("input of %d bytes was cut: %v", len(in), br.cut)
		}
		if got, want := bytes.Count(out, []byte("\n")), strings.Count(in, "\n"); got != want {
			t.Fatalf("boundedReader(%q) = %q: %d line breaks, want %d", in, out, got, want)
		}
		if !strings.Contains(in, "\" ") && !strings.Contains(in, "\"\t") {
			if want := strings.TrimPrefix(in, "\ufeff"); string(out) != want {
				t.Fatalf("boundedReader(%q) = %q, want it unchanged", in, out)
			}
		}
		open := make(map[int]bool) // lines that end inside a quoted field
		sc := newBoundedReader(nil)
		for i, line := range bytes.SplitAfter(out, []byte("\n")) {
			st, _ := sc.scan(line, nil)
			sc.inQuote = st == stQuoted
			open[i+1] = sc.inQuote && bytes.HasSuffix(line, []byte("\n"))
		}

		// The lines on which encoding/csv ends records.
		cr := csv.NewReader(bytes.NewReader(out))
		cr.FieldsPerRecord = -1
		cr.TrimLeadingSpace = true
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			var first, last int
			var pe *csv.ParseError
			switch {
			case errors.As(err, &pe):
				first, last = pe.StartLine, pe.Line
			case err != nil:
				t.Fatal(err)
			default:
				first, _ = cr.FieldPos(0)
				last, _ = cr.FieldPos(len(rec) - 1)
				last += strings.Count(rec[len(rec)-1], "\n")
			}
			for l := first; l < last; l++ {
				if !open[l] {
					t.Fatalf("input %q: encoding/csv continues a record past line %d, boundedReader ends it", out, l)
				}
			}
			if open[last] && last < bytes.Count(out, []byte("\n")) { // unclosed at the end of input
				t.Fatalf("input %q: encoding/csv ends a record on line %d, boundedReader continues it", out, last)
			}
		}
	})
}
