package credsource

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests (a fetch that
// a cache or a source left running).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
