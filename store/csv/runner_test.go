package csv_test

import (
	"github.com/batchreset/batchreset/runner"
	"github.com/batchreset/batchreset/store/csv"
)

// The CSV store is one of the stores a runner can use.
var _ runner.Store = (*csv.Store)(nil)
