package testdb

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
)

// TestLaunchPortTaken checks the case Start retries: mariadbd cannot bind
// its port and exits before it is ready.
func TestLaunchPortTaken(t *testing.T) {
	t.Parallel() // a server of its own
	if Require(t).External() {
		t.Skip("external server: this test starts a private one")
	}
	bins, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := makeDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{Dir: dir, bins: bins}
	if err := s.installDB(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s.setPort(l.Addr().(*net.TCPAddr).Port)

	err = s.launch(t.Context())
	if !errors.Is(err, errExitedEarly) {
		t.Fatalf("launch on a taken port: %v; want errExitedEarly", err)
	}
	if s.proc != nil {
		t.Error("launch kept a process that exited")
	}
	if !strings.Contains(err.Error(), logName) {
		t.Errorf("error does not show the error log:\n%v", err)
	}
	t.Logf("error as reported:\n%v", err)
}
