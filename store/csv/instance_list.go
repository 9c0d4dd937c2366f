package csv

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/batchreset/batchreset/lighthouse"
)

// ReadInstanceList reads a list of instance IDs from the file at path: one
// ID per line, or a CSV whose header names an instance_id column (a jobs or
// results file, whatever its other columns). Blank lines and lines starting
// with "#" are ignored; fields may be quoted, as CSV quotes them. Every ID
// passes lighthouse.CheckInstanceID; otherwise, or for a row without the
// instance_id field, it returns an Errors naming each line, and no IDs.
// The IDs are returned in file order, each once.
func ReadInstanceList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := newBoundedReader(f)
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	var (
		ids  []string
		seen = map[string]bool{}
		errs Errors
		col  = -1 // instance_id's column in a CSV; -1 for a plain list
		rows int
	)
	add := func(line int, err error) {
		if len(errs) < maxErrors {
			field := ""
			if col >= 0 {
				field = colInstanceID
			}
			errs = append(errs, &RowError{Path: path, Line: line, Field: field, Err: err})
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if pe, ok := errors.AsType[*csv.ParseError](err); ok {
			if line, cut := br.claimCut(pe.StartLine, pe.Line); cut {
				add(line, errLineTooLong)
			} else {
				add(pe.Line, fmt.Errorf("column %d: %w", pe.Column, pe.Err))
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue
		}
		rows++
		if rows == 1 {
			if i := slices.IndexFunc(rec, func(f string) bool { return strings.EqualFold(strings.TrimSpace(f), colInstanceID) }); i >= 0 {
				col = i
				continue
			}
		}
		var id string
		switch {
		case col < 0 && len(rec) == 1:
			id = strings.TrimSpace(rec[0])
		case col < 0:
			add(line, fmt.Errorf("%d fields: want one instance ID per line, or a header naming an instance_id column", len(rec)))
			continue
		case col >= len(rec):
			add(line, errors.New("no instance_id field"))
			continue
		default:
			id = strings.TrimSpace(rec[col])
		}
		if err := lighthouse.CheckInstanceID(id); err != nil {
			add(line, err)
			continue
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return ids, nil
}
