package csv_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a Store's writer goroutine running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
