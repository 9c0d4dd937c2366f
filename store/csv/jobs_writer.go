package csv

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/batchreset/batchreset/store"
)

// WriteJobs writes jobs as a jobs CSV, the format Reader reads: comment,
// if not empty, as a first "#" line (line breaks become spaces: the way
// `batchreset select` records how a list was made), then the header and a
// row per job. The columns are
// instance_id, blueprint_id and region, and key_ids and
// auto_generate_password when a job has login settings, and account when a
// job names one. Only those fields of each job are written.
func WriteJobs(w io.Writer, comment string, jobs []store.Job) error {
	bw := bufio.NewWriter(w)
	if comment != "" {
		fmt.Fprintf(bw, "# %s\n", strings.NewReplacer("\n", " ", "\r", " ").Replace(comment))
	}
	login := slices.ContainsFunc(jobs, func(j store.Job) bool { return len(j.KeyIDs) > 0 || j.AutoGeneratePassword })
	cw := csv.NewWriter(bw)
	header := []string{colInstanceID, colBlueprintID, colRegion}
	if login {
		header = append(header, colKeyIDs, colAutoPass)
	}
	accounts := slices.ContainsFunc(jobs, func(j store.Job) bool { return j.Account != "" })
	if accounts {
		header = append(header, colAccount)
	}
	cw.Write(header)
	rec := make([]string, len(header))
	for i := range jobs {
		j := &jobs[i]
		rec[0], rec[1], rec[2] = j.InstanceID, j.BlueprintID, j.Region
		if login {
			rec[3], rec[4] = strings.Join(j.KeyIDs, store.KeyIDSeparator), ""
			if j.AutoGeneratePassword {
				rec[4] = "yes"
			}
		}
		if accounts {
			rec[len(rec)-1] = j.Account
		}
		cw.Write(rec)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write jobs: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write jobs: %w", err)
	}
	return nil
}
