package main

import "github.com/batchreset/batchreset/store"

// resultsView rewrites, in place, every job to the outcome a results file
// reports: jobs a run left unstarted are skipped, jobs left in flight are
// unknown. The store keeps their real status for the next run.
func resultsView(jobs []store.Job) []store.Job {
	for i := range jobs {
		resultView(&jobs[i])
	}
	return jobs
}

// tallyJobs tallies jobs, already as a results file shows them.
func tallyJobs(jobs []store.Job) runTally {
	c := newTallier()
	for i := range jobs {
		c.add(&jobs[i])
	}
	return c.tally()
}
