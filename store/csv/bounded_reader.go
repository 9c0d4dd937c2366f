package csv

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unicode"
	"unicode/utf8"
)

// maxRecordBytes caps how much of one CSV record reaches encoding/csv. A
// valid record is a few hundred bytes; the cap leaves room for long ignored
// columns (notes pasted from a ticket) while keeping a hostile input from
// making encoding/csv buffer a multi-megabyte line or quoted field.
const maxRecordBytes = 64 << 10

// utf8BOM is the byte order mark that Excel puts in front of "CSV UTF-8".
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// boundedReader sits between the input and encoding/csv. It strips a leading
// UTF-8 BOM and cuts every record at maxRecordBytes: the rest of the physical
// line is discarded, an open quoted field is closed, and the line number goes
// on a list so that the row is reported as too long. Line breaks are passed
// through one for one, so encoding/csv's line numbers stay those of the file.
//
// To know where records end it follows encoding/csv's quoting rules (with
// TrimLeadingSpace set and LazyQuotes unset) line by line; a line without a
// quote in it, the usual case, is passed on without looking at its bytes.
type boundedReader struct {
	br      *bufio.Reader
	out     []byte // bytes ready for the next Read
	scratch []byte // a cut line, which must outlive the bufio buffer
	err     error  // sticky error from br, returned once out is drained
	started bool   // the BOM check is done
	line    int    // physical lines read so far
	inQuote bool   // the previous line ended inside a quoted field
	recLen  int    // bytes of the current record read so far
	cut     []int  // lines cut short and not yet claimed by a record, ascending
}

func newBoundedReader(r io.Reader) *boundedReader {
	return &boundedReader{br: bufio.NewReaderSize(r, maxRecordBytes)}
}

// Read implements io.Reader.
func (b *boundedReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(b.out) == 0 {
			if b.err != nil {
				break
			}
			b.next()
			continue
		}
		c := copy(p[n:], b.out)
		b.out = b.out[c:]
		n += c
	}
	if n > 0 {
		return n, nil
	}
	return 0, b.err
}

// next reads one physical line into b.out, or sets b.err.
func (b *boundedReader) next() {
	line, err := b.br.ReadSlice('\n')
	if !b.started {
		b.started = true
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	if len(line) == 0 && err != nil {
		b.err = err
		return
	}
	b.line++
	if err == bufio.ErrBufferFull {
		b.cutLine(line, maxRecordBytes-b.recLen)
		return
	}
	if err != nil {
		b.err = err // io.EOF after a last line without a line break
	}

	start := b.recLen
	b.recLen += len(line)
	if b.recLen > maxRecordBytes {
		b.cutLine(line, maxRecordBytes-start)
		return
	}
	switch {
	case !b.inQuote && bytes.IndexByte(line, '"') < 0:
		b.recLen = 0 // the record ends with this line
	case b.inQuote && bytes.IndexByte(line, '"') < 0:
		// still inside the quoted field
	default:
		st, trailing := b.scan(line, nil)
		if trailing {
			b.scratch = b.scratch[:0]
			b.scan(line, &b.scratch)
			line = b.scratch
		}
		b.inQuote = st == stQuoted
		if !b.inQuote {
			b.recLen = 0
		}
	}
	b.out = line
}

// cutLine passes on the first keep bytes of line (the start of a line longer
// than the bufio buffer if the line did not fit), closes an open quote and
// ends the line, and discards input up to the next line break.
func (b *boundedReader) cutLine(line []byte, keep int) {
	keep = max(0, min(keep, len(line)))
	b.scratch = b.scratch[:0]
	if st, _ := b.scan(line[:keep], &b.scratch); st == stQuoted {
		b.scratch = append(b.scratch, '"')
	}
	b.scratch = append(b.scratch, '\n')
	b.out = b.scratch
	b.cut = append(b.cut, b.line)
	b.inQuote, b.recLen = false, 0

	rest := line[keep:]
	var err error
	for len(rest) == 0 || rest[len(rest)-1] != '\n' {
		rest, err = b.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			b.err = err
			return
		}
	}
}

// claimCut reports the first line in [from, to] that was cut short, and
// forgets every cut line up to to.
func (b *boundedReader) claimCut(from, to int) (line int, ok bool) {
	i := 0
	for i < len(b.cut) && b.cut[i] <= to {
		if !ok && b.cut[i] >= from {
			line, ok = b.cut[i], true
		}
		i++
	}
	b.cut = b.cut[:copy(b.cut, b.cut[i:])]
	return line, ok
}

// Quote-tracking states, mirroring encoding/csv's parser.
const (
	stFieldStart = iota // at the start of a field: spaces are skipped
	stUnquoted          // inside a field that did not start with a quote
	stQuoted            // inside a quoted field
	stQuoteSeen         // a quote inside a quoted field: closes it unless doubled
	stSkipLine          // encoding/csv reported an error: the rest of the line is dropped
)

// scan runs the quote-tracking state machine over one physical line (or the
// start of one), starting from b.inQuote, and returns the state at its end:
// a line break ends the record unless a quoted field is open.
//
// encoding/csv rejects spaces after a closing quote ("a" ,b), which people
// typing a file by hand write; scan reports them in trailing, and if dst is
// not nil it appends the line to *dst without them.
func (b *boundedReader) scan(line []byte, dst *[]byte) (st int, trailing bool) {
	st = stFieldStart
	if b.inQuote {
		st = stQuoted
	}
	emit := func(p []byte) {
		if dst != nil {
			*dst = append(*dst, p...)
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch st {
		case stFieldStart:
			switch {
			case c == '"':
				st = stQuoted
			case c == ',':
			case c == '\n':
				emit(line[i:])
				return stFieldStart, trailing
			case c < utf8.RuneSelf:
				if !isASCIISpace(c) {
					st = stUnquoted
				}
			default:
				r, size := utf8.DecodeRune(line[i:])
				if !unicode.IsSpace(r) {
					st = stUnquoted
				}
				emit(line[i : i+size-1])
				i += size - 1
			}
		case stUnquoted:
			switch c {
			case ',':
				st = stFieldStart
			case '\n':
				emit(line[i:])
				return stFieldStart, trailing
			case '"':
				st = stSkipLine // bare quote
			}
		case stQuoted:
			if c == '"' {
				st = stQuoteSeen
			}
		case stQuoteSeen:
			switch {
			case c == '"':
				st = stQuoted
			case c == ',':
				st = stFieldStart
			case c == '\n':
				emit(line[i:])
				return stFieldStart, trailing
			case c == '\r' && (i+1 == len(line) || line[i+1] == '\n'):
				// encoding/csv reads "\r\n" as "\n" and drops a final "\r".
			case c == ' ' || c == '\t':
				k := i + 1
				for k < len(line) && (line[k] == ' ' || line[k] == '\t') {
					k++
				}
				if k == len(line) || line[k] == ',' || line[k] == '\n' || line[k] == '\r' {
					trailing = true
					i = k - 1 // drop the spaces; the field ends at line[k]
					continue
				}
				st = stSkipLine // stray quote
			default:
				st = stSkipLine // stray quote
			}
		case stSkipLine:
			if c == '\n' {
				emit(line[i:])
				return stFieldStart, trailing
			}
		}
		emit(line[i : i+1])
	}
	return st, trailing
}

// isASCIISpace reports whether c is an ASCII byte unicode.IsSpace accepts.
func isASCIISpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}
