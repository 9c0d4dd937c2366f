package csv

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/batchreset/batchreset/store"
)

// parseFast decodes a journal line as encodeRecord writes it in the usual
// case: no spaces, strings without escapes, integers. It reports false,
// having decoded nothing that counts, on anything else, and the caller falls
// back to encoding/json, which is eight times slower and allocates a dozen
// times more; replaying the journal of a large run is mostly this.
func (r *record) parseFast(line []byte) bool {
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
		return false
	}
	p := line[1 : len(line)-1]
	var seen uint32
	for len(p) > 0 {
		key, rest, ok := fastString(p)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false
		}
		p = rest[1:]
		f := fieldOf(key)
		if f < 0 || seen&(1<<f) != 0 {
			return false // unknown or repeated: let encoding/json judge
		}
		seen |= 1 << f
		switch f {
		case fID, fFence, fAttempts:
			bits := 64
			if f == fAttempts {
				bits = strconv.IntSize
			}
			v, rest, ok := fastInt(p, bits)
			if !ok {
				return false
			}
			p = rest
			switch f {
			case fID:
				r.ID = v
			case fFence:
				r.Fence = v
			case fAttempts:
				r.Attempts = int(v)
			}
		default:
			v, rest, ok := fastString(p)
			if !ok {
				return false
			}
			p = rest
			if f == fStatus {
				r.Status = status(v)
				break
			}
			s := string(v)
			switch f {
			case fRun:
				r.Run = s
			case fInstanceID:
				r.InstanceID = s
			case fBlueprintID:
				r.BlueprintID = s
			case fRegion:
				r.Region = s
			case fRequestID:
				r.RequestID = s
			case fPrevRequestID:
				r.PrevRequestID = s
			case fErrorCode:
				r.ErrorCode = s
			case fErrorMessage:
				r.ErrorMessage = s
			case fNotBefore:
				r.NotBefore = s
			case fIntentAt:
				r.IntentAt = s
			case fSubmittedAt:
				r.SubmittedAt = s
			case fFinishedAt:
				r.FinishedAt = s
			}
		}
		if len(p) > 0 {
			if p[0] != ',' || len(p) == 1 {
				return false
			}
			p = p[1:]
		}
	}
	return true
}

// Journal record fields, as numbered by fieldOf.
const (
	fID = iota
	fRun
	fInstanceID
	fBlueprintID
	fRegion
	fStatus
	fRequestID
	fPrevRequestID
	fErrorCode
	fErrorMessage
	fAttempts
	fNotBefore
	fIntentAt
	fSubmittedAt
	fFinishedAt
	fFence
)

// fieldOf returns the number of the record field with JSON key key, or -1.
func fieldOf(key []byte) int {
	switch string(key) {
	case "id":
		return fID
	case "run":
		return fRun
	case "instance_id":
		return fInstanceID
	case "blueprint_id":
		return fBlueprintID
	case "region":
		return fRegion
	case "status":
		return fStatus
	case "request_id":
		return fRequestID
	case "prev_request_id":
		return fPrevRequestID
	case "error_code":
		return fErrorCode
	case "error_message":
		return fErrorMessage
	case "attempts":
		return fAttempts
	case "not_before":
		return fNotBefore
	case "intent_at":
		return fIntentAt
	case "submitted_at":
		return fSubmittedAt
	case "finished_at":
		return fFinishedAt
	case "fence":
		return fFence
	}
	return -1
}

// fastString splits a JSON string without escapes or control characters
// off the front of p and returns its contents.
func fastString(p []byte) (s, rest []byte, ok bool) {
	if len(p) == 0 || p[0] != '"' {
		return nil, nil, false
	}
	end := bytes.IndexByte(p[1:], '"')
	if end < 0 {
		return nil, nil, false
	}
	s = p[1 : 1+end]
	for _, c := range s {
		if c < 0x20 || c == '\\' {
			return nil, nil, false
		}
	}
	if !utf8.Valid(s) {
		return nil, nil, false
	}
	return s, p[2+end:], true
}

// fastInt splits a JSON integer off the front of p.
func fastInt(p []byte, bits int) (v int64, rest []byte, ok bool) {
	n := 0
	if n < len(p) && p[n] == '-' {
		n++
	}
	digits := n
	for n < len(p) && '0' <= p[n] && p[n] <= '9' {
		n++
	}
	if n == digits || (p[digits] == '0' && n > digits+1) {
		return 0, nil, false // no digits, or a leading zero
	}
	v, err := strconv.ParseInt(string(p[:n]), 10, bits)
	if err != nil {
		return 0, nil, false
	}
	return v, p[n:], true
}

// status returns s as a Status, sharing the constant's string when it is
// one.
func status(s []byte) store.Status {
	for _, st := range []store.Status{
		store.StatusPending, store.StatusSubmitting, store.StatusSubmitted, store.StatusSucceeded,
		store.StatusFailed, store.StatusSkipped, store.StatusUnknown,
	} {
		if string(s) == string(st) {
			return st
		}
	}
	return store.Status(s)
}
