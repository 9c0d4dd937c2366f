package csv

// RaceEnabled lets the external tests size themselves to the race detector.
const RaceEnabled = raceEnabled
