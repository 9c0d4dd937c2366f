//go:build !race

package csv

// raceEnabled reports whether the race detector, which multiplies memory
// use, is on.
const raceEnabled = false
