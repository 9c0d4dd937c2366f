package csv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/batchreset/batchreset/store"
)

// Version 2 of the journal writes deltas. After the header,
//
//	{"batchreset_state":2,"run_id":"sha256:…","started":"…"}
//
// each line is one Save, and says only what changed since the job's
// previous record (or, for its first one, since the input):
//
//	{"n":0,"s":"submitting","a":1,"i":1520000000}
//	{"n":0,"s":"submitted","r":"5b1c…"}
//
// n is the job's position in the input, which the run ID pins. The other
// keys are s status, r request_id, p prev_request_id, o prev_blueprint_id,
// c error_code, m error_message, h hook_phase (o and h absent in journals
// written before they existed), a attempts, e fence, and the times b not_before,
// i intent_at, u submitted_at and f finished_at, each in nanoseconds since
// the header's started, null when zero. A record with "z":1 starts from
// the job as the input has it, with nothing recorded: compaction writes one
// such record per job that has a state, in input order, and nothing else.
// A finished job's compacted record is some 180 bytes.

const journalDelta = 2

// deltaKeys are the keys of a delta record, by field.
const (
	kStatus    = "s"
	kRequestID = "r"
	kPrevID    = "p"
	kPrevBP    = "o"
	kCode      = "c"
	kMessage   = "m"
	kHook      = "h"
	kAttempts  = "a"
	kFence     = "e"
	kNotBefore = "b"
	kIntentAt  = "i"
	kSubmitted = "u"
	kFinished  = "f"
)

// appendDelta appends the record of job n changing from old to j. With
// zero set, old must be the job as the input has it with nothing recorded,
// and the record says so.
func appendDelta(buf []byte, n int, old, j *store.Job, started time.Time, zero bool) []byte {
	buf = append(buf, `{"n":`...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	if zero {
		buf = append(buf, `,"z":1`...)
	}
	str := func(key, was, now string) {
		if was != now {
			buf = append(buf, ',', '"')
			buf = append(buf, key...)
			buf = append(buf, '"', ':')
			buf = appendJSONString(buf, now)
		}
	}
	num := func(key string, was, now int64) {
		if was != now {
			buf = append(buf, ',', '"')
			buf = append(buf, key...)
			buf = append(buf, '"', ':')
			buf = strconv.AppendInt(buf, now, 10)
		}
	}
	tm := func(key string, was, now time.Time) {
		if was.Equal(now) {
			return
		}
		buf = append(buf, ',', '"')
		buf = append(buf, key...)
		buf = append(buf, '"', ':')
		if now.IsZero() {
			buf = append(buf, "null"...)
		} else {
			buf = strconv.AppendInt(buf, now.UnixNano()-started.UnixNano(), 10)
		}
	}
	str(kStatus, string(old.Status), string(j.Status))
	str(kRequestID, old.RequestID, j.RequestID)
	str(kPrevID, old.PrevRequestID, j.PrevRequestID)
	str(kPrevBP, old.PrevBlueprintID, j.PrevBlueprintID)
	str(kCode, old.ErrorCode, j.ErrorCode)
	str(kMessage, old.ErrorMessage, j.ErrorMessage)
	str(kHook, string(old.HookPhase), string(j.HookPhase))
	num(kAttempts, int64(old.Attempts), int64(j.Attempts))
	num(kFence, old.Fence, j.Fence)
	tm(kNotBefore, old.NotBefore, j.NotBefore)
	tm(kIntentAt, old.IntentAt, j.IntentAt)
	tm(kSubmitted, old.SubmittedAt, j.SubmittedAt)
	tm(kFinished, old.FinishedAt, j.FinishedAt)
	return append(buf, '}', '\n')
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	plain := utf8.ValidString(s)
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if plain {
		buf = append(buf, '"')
		buf = append(buf, s...)
		return append(buf, '"')
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always encodes
	}
	return append(buf, b...)
}

// delta is one decoded version-2 record.
type delta struct {
	n    int64
	zero bool
	set  uint16 // the fields present, by bit number below
	s    store.Status
	r, p string
	o    string
	c, m string
	h    store.HookPhase
	a, e int64
	// Times as nanoseconds since started; a nil bit in null.
	b, i, u, f int64
	null       uint16
}

// delta fields, as bits of delta.set.
const (
	dS = 1 << iota
	dR
	dP
	dC
	dM
	dA
	dE
	dB
	dI
	dU
	dF
	dO
	dH
)

var deltaFields = map[string]uint16{
	kStatus: dS, kRequestID: dR, kPrevID: dP, kCode: dC, kMessage: dM, kAttempts: dA, kFence: dE,
	kNotBefore: dB, kIntentAt: dI, kSubmitted: dU, kFinished: dF, kPrevBP: dO, kHook: dH,
}

// decodeDelta parses one version-2 line (without its line break).
func decodeDelta(line []byte) (delta, error) {
	var d delta
	if d.parseFast(line) {
		return d, nil
	}
	d = delta{}
	return d, d.parseJSON(line)
}

// parseFast decodes a record as appendDelta writes it in the usual case:
// strings without escapes. It reports false on anything else.
func (d *delta) parseFast(line []byte) bool {
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
		return false
	}
	p := line[1 : len(line)-1]
	var seenN bool
	for len(p) > 0 {
		key, rest, ok := fastString(p)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false
		}
		p = rest[1:]
		switch k := string(key); k {
		case "n", "z":
			v, rest, ok := fastInt(p, 64)
			if !ok {
				return false
			}
			p = rest
			if k == "n" {
				if seenN {
					return false
				}
				d.n, seenN = v, true
			} else {
				if v != 1 || d.zero {
					return false
				}
				d.zero = true
			}
		default:
			bit, known := deltaFields[k]
			if !known || d.set&bit != 0 {
				return false
			}
			d.set |= bit
			switch bit {
			case dS, dR, dP, dC, dM, dO, dH:
				v, rest, ok := fastString(p)
				if !ok {
					return false
				}
				p = rest
				d.setString(bit, string(v))
			default:
				if bytes.HasPrefix(p, []byte("null")) && bit >= dB {
					d.null |= bit
					p = p[len("null"):]
					break
				}
				v, rest, ok := fastInt(p, 64)
				if !ok {
					return false
				}
				p = rest
				d.setInt(bit, v)
			}
		}
		if len(p) > 0 {
			if p[0] != ',' || len(p) == 1 {
				return false
			}
			p = p[1:]
		}
	}
	return seenN
}

func (d *delta) setString(bit uint16, v string) {
	switch bit {
	case dS:
		d.s = status([]byte(v))
	case dR:
		d.r = v
	case dP:
		d.p = v
	case dO:
		d.o = v
	case dC:
		d.c = v
	case dM:
		d.m = v
	case dH:
		d.h = store.HookPhase(v)
	}
}

func (d *delta) setInt(bit uint16, v int64) {
	switch bit {
	case dA:
		d.a = v
	case dE:
		d.e = v
	case dB:
		d.b = v
	case dI:
		d.i = v
	case dU:
		d.u = v
	case dF:
		d.f = v
	}
}

// parseJSON decodes a record with encoding/json, strictly, and explains
// what is wrong with a damaged one.
func (d *delta) parseJSON(line []byte) error {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the record")
	}
	raw, ok := fields["n"]
	if !ok {
		return errors.New("no n")
	}
	if err := json.Unmarshal(raw, &d.n); err != nil {
		return fmt.Errorf("n: %w", err)
	}
	for k, raw := range fields {
		switch k {
		case "n":
			continue
		case "z":
			var z int
			if err := json.Unmarshal(raw, &z); err != nil || z != 1 {
				return fmt.Errorf("z: want 1, have %s", raw)
			}
			d.zero = true
			continue
		}
		bit, known := deltaFields[k]
		if !known {
			return fmt.Errorf("unknown field %q", k)
		}
		d.set |= bit
		switch bit {
		case dS, dR, dP, dC, dM, dO, dH:
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			d.setString(bit, v)
		default:
			if string(raw) == "null" && bit >= dB {
				d.null |= bit
				continue
			}
			var v int64
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			d.setInt(bit, v)
		}
	}
	return nil
}

// apply changes j as d says; base is the job as the input has it, for a
// record that starts from there.
func (d *delta) apply(j *store.Job, base store.Job, started time.Time) error {
	if d.zero {
		*j = base
		j.Status = store.StatusPending
	}
	if d.set&dS != 0 {
		if !d.s.Valid() {
			return fmt.Errorf("unknown status %q", d.s)
		}
		j.Status = d.s
	}
	if d.set&dR != 0 {
		j.RequestID = d.r
	}
	if d.set&dP != 0 {
		j.PrevRequestID = d.p
	}
	if d.set&dO != 0 {
		j.PrevBlueprintID = d.o
	}
	if d.set&dC != 0 {
		j.ErrorCode = d.c
	}
	if d.set&dM != 0 {
		j.ErrorMessage = d.m
	}
	if d.set&dH != 0 {
		if !d.h.Valid() {
			return fmt.Errorf("unknown hook phase %q", d.h)
		}
		j.HookPhase = d.h
	}
	if d.set&dA != 0 {
		if d.a < 0 || d.a > 1<<31-1 {
			return fmt.Errorf("attempts %d out of range", d.a)
		}
		j.Attempts = int(d.a)
	}
	if d.set&dE != 0 {
		j.Fence = d.e
	}
	at := func(bit uint16, v int64, t *time.Time) {
		switch {
		case d.set&bit == 0:
		case d.null&bit != 0:
			*t = time.Time{}
		default:
			*t = started.Add(time.Duration(v)).UTC()
		}
	}
	at(dB, d.b, &j.NotBefore)
	at(dI, d.i, &j.IntentAt)
	at(dU, d.u, &j.SubmittedAt)
	at(dF, d.f, &j.FinishedAt)
	return nil
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
