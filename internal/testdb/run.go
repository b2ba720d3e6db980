package testdb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// EnvRootDSN names the environment variable that points the tests at an
// existing server instead of a private one: a go-sql-driver/mysql DSN for an
// account that may create users and databases and set global variables.
const EnvRootDSN = "ROTATINGMYSQL_TEST_MYSQL_ROOT_DSN"

// runTimeout bounds starting the server in Run.
const runTimeout = 2 * time.Minute

// shortReason is why integration tests skip under go test -short.
const shortReason = "integration test: needs MariaDB, skipped in -short mode (make test-short); run without -short (make test)"

// State set by Run before the tests start and only read by them.
var (
	shared     *Server
	ran        bool
	skipReason string
)

// Run is for TestMain: it starts a private server (or attaches to the one
// named by EnvRootDSN), runs the tests, stops the server and returns the exit
// code:
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
//
// When MariaDB is not installed, Run prints a warning and runs the tests
// without a server, so that [Require] skips them; but when the environment
// variable CI is true it prints an error and returns 1 without running any
// test. Any other failure to start the server also returns 1.
//
// Under go test -short Run starts no server and [Require] skips every
// integration test, CI or not: -short asks for the unit tests only. The
// package's Examples are left out too (unless -skip is given): an Example
// cannot skip itself, and those of these packages log in to the server.
func Run(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse() // for testing.Verbose and testing.Short; m.Run parses only once
	}
	ran = true
	if testing.Short() {
		skipReason = shortReason
		if skip := flag.Lookup("test.skip"); skip != nil && skip.Value.String() == "" {
			if err := skip.Value.Set("^Example"); err != nil {
				fmt.Fprintf(os.Stderr, "testdb: -short: cannot leave the Examples out: %v\n", err)
				return 1
			}
		}
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	began := time.Now()
	srv, err := startShared(ctx)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, ErrNotInstalled) && !InCI():
		skipReason = err.Error() + "; integration tests SKIP. Run: make test"
		fmt.Fprintf(os.Stderr, "\n*** %s ***\n\n", skipReason)
		return m.Run()
	case errors.Is(err, ErrNotInstalled):
		fmt.Fprintf(os.Stderr, "\n*** FAIL: %v; CI=true requires a server. Run scripts/install-mariadb.sh (make test does) ***\n\n", err)
		return 1
	default:
		fmt.Fprintf(os.Stderr, "\n*** FAIL: cannot start the test server: %v ***\n\n", err)
		return 1
	}
	shared = srv
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testdb: MariaDB %s on %s, ready in %v\n", srv.Version, srv.Addr, time.Since(began).Round(time.Millisecond))
	}
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testdb: stop server: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func startShared(ctx context.Context) (*Server, error) {
	if dsn := os.Getenv(EnvRootDSN); dsn != "" {
		return Attach(ctx, dsn)
	}
	return Start(ctx)
}

// Require returns the server started by [Run]. Under go test -short it
// skips the test (an integration test). When there is no server, it skips
// the test with the reason, or fails it when the environment variable CI is
// true. It fails the test when TestMain does not call Run.
func Require(t testing.TB) *Server {
	t.Helper()
	switch {
	case testing.Short():
		t.Skip(shortReason)
	case shared != nil:
		return shared
	case !ran:
		t.Fatal("testdb: no server: TestMain must call testdb.Run: func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }")
	case InCI():
		t.Fatalf("%s (but CI=true: a missing server is a failure)", skipReason)
	default:
		t.Skip(skipReason)
	}
	return nil
}

// Shared returns the server started by [Run], or an error saying why there
// is none. It is for code without a *testing.T, such as Example functions;
// tests use [Require].
func Shared() (*Server, error) {
	switch {
	case shared != nil:
		return shared, nil
	case !ran:
		return nil, errors.New("testdb: no server: TestMain must call testdb.Run")
	default:
		return nil, errors.New("testdb: " + skipReason)
	}
}

// InCI reports whether the environment variable CI is true, as CI systems
// set it. In CI, a missing server fails the tests instead of skipping them.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}
