package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// drillTimeout bounds one drill run in the tests: setup, a few seconds of
// load and cleanup.
const drillTimeout = 2 * time.Minute

// skipShort skips a test that runs a drill (a MariaDB server and seconds
// of load) under go test -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a drill against MariaDB: skipped in -short mode (make test-short); run without -short (make test)")
	}
}

// runJSON runs the command with args plus -json -q and decodes the report.
// Under -short it skips the test unless the run is to fail on its
// arguments (wantExit exitCannotRun).
func runJSON(t *testing.T, wantExit int, args ...string) (*Report, string) {
	t.Helper()
	if wantExit != exitCannotRun {
		skipShort(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(args, "-json", "-q"), &stdout, &stderr)
	if code != wantExit {
		t.Fatalf("exit status %d, want %d\nstderr:\n%s\nstdout:\n%s", code, wantExit, stderr.String(), stdout.String())
	}
	if wantExit == exitCannotRun {
		return nil, stderr.String()
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decode the JSON report: %v\n%s", err, stdout.String())
	}
	return &rep, stderr.String()
}

func driverTotal(t *testing.T, rep *Report, name string) DriverTotal {
	t.Helper()
	d := rep.driver(name)
	if d == nil {
		t.Fatalf("report has no driver %q: %+v", name, rep.Drivers)
	}
	return *d
}

// stepErrors sums a driver's errors over the rows of step.
func stepErrors(rep *Report, driver, step string) (queries, errors int) {
	for _, r := range rep.Steps {
		if r.Driver == driver && r.Step == step {
			queries += r.Queries
			errors += r.Errors
		}
	}
	return queries, errors
}

// checkSingleUser asserts the outcome the README promises for a
// single-user drill: rotatingmysql without error and with at least one
// login refused and absorbed; the plain driver failing during the window
// and after it.
func checkSingleUser(t *testing.T, rep *Report) {
	t.Helper()
	if !rep.Pass || len(rep.Problems) > 0 {
		t.Errorf("report does not pass: %v", rep.Problems)
	}
	rm := driverTotal(t, rep, driverRotating)
	if rm.Errors != 0 || rm.Queries == 0 {
		t.Errorf("rotatingmysql: %d errors in %d queries (%v), want 0 errors", rm.Errors, rm.Queries, rm.ErrorKinds)
	}
	if deref(rm.FailedLoginsAbsorbed) == 0 || deref(rm.PendingUsed) == 0 {
		t.Errorf("rotatingmysql absorbed %d failed logins and used AWSPENDING %d times, want both > 0: its fresh connections must have met the window",
			deref(rm.FailedLoginsAbsorbed), deref(rm.PendingUsed))
	}
	if deref(rm.APICalls) == 0 {
		t.Errorf("rotatingmysql made no API call")
	}
	plain := driverTotal(t, rep, driverPlain)
	if _, e := stepErrors(rep, driverPlain, stepWindow); e == 0 || plain.ErrorsInWindow == 0 {
		t.Errorf("plain driver: no error during the window (%+v)", plain)
	}
	if _, e := stepErrors(rep, driverPlain, stepAfter); e == 0 || plain.ErrorsAfter == 0 {
		t.Errorf("plain driver: no error after the window (%+v)", plain)
	}
	if _, e := stepErrors(rep, driverPlain, stepBefore); e != 0 {
		t.Errorf("plain driver: %d errors before the rotation", e)
	}
	for k := range plain.ErrorKinds {
		if !strings.Contains(k, "1045") {
			t.Errorf("plain driver error %q, want only 1045 access denied", k)
		}
	}
}

func TestDefaultDrill(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "timeline.svg")
	rep, _ := runJSON(t, exitPass, "-duration", "2s", "-window", "500ms", "-svg", svg)
	checkSingleUser(t, rep)
	var steps []string
	for _, m := range rep.Marks {
		steps = append(steps, m.Step)
	}
	want := []string{stepBefore, stepCreateSecret, stepSetSecret, stepTestSecret, stepWindow, stepFinishSecret, stepAfter}
	if strings.Join(steps, ",") != strings.Join(want, ",") {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if n := len(rep.Timeline.Series); n != 2 {
		t.Fatalf("timeline has %d series, want 2", n)
	}
	for _, s := range rep.Timeline.Series {
		total := 0
		for _, q := range s.Queries {
			total += q
		}
		for _, e := range s.Errors {
			total += e
		}
		if d := driverTotal(t, rep, s.Driver); total != d.Queries {
			t.Errorf("%s: timeline holds %d queries, totals %d", s.Driver, total, d.Queries)
		}
	}
	checkSVG(t, svg)
	// The picture: the steps in words, each driver's totals in its title,
	// and the drill's shutdown left out.
	texts := strings.Join(svgTexts(t, svg), "\n")
	for _, want := range []string{"password changed (setSecret)", "AWSCURRENT moved (finishSecret)", panelTitle(rep, driverRotating), panelTitle(rep, driverPlain)} {
		if !strings.Contains(texts, want) {
			t.Errorf("picture lacks %q:\n%s", want, texts)
		}
	}
	if d := drawnPart(rep); rep.ShutdownMS < 2000 || rep.ShutdownMS > rep.ElapsedMS || d.xmax*1000 > rep.ShutdownMS {
		t.Errorf("shutdown at %v ms of %v, picture to %v s: want the shutdown after the 2 s and the picture ending before it", rep.ShutdownMS, rep.ElapsedMS, d.xmax)
	}
}

// checkSVG asserts that path is well-formed XML with an svg root that
// draws something.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	root, paths := "", 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "path" {
				paths++
			}
		}
	}
	if root != "svg" || paths < 10 {
		t.Errorf("%s: root element %q with %d paths, want an svg drawing", path, root, paths)
	}
	if !bytes.Contains(data, []byte("rotatingmysql")) || !bytes.Contains(data, []byte("window")) {
		t.Errorf("%s: titles or step labels missing", path)
	}
}

func TestTextReport(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"-duration", "2s", "-window", "500ms", "-workers", "2"}, &stdout, &stderr); code != exitPass {
		t.Fatalf("exit status %d\n%s\n%s", code, stderr.String(), stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{"failed logins absorbed", "API calls", "PASS: rotatingmysql: ", " queries, 0 application errors, ", "Error 1045"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// Live progress: a line per second naming the step and both drivers,
	// and a line per step.
	prog := stderr.String()
	for _, want := range []string{"queries/s", "application errors/s", "totals: 0 application errors, ", "failed login", " absorbed, ", " API call", "-- password changed (setSecret), rotation 1"} {
		if !strings.Contains(prog, want) {
			t.Errorf("progress lacks %q:\n%s", want, prog)
		}
	}
}

func TestMultiUserTwoRotations(t *testing.T) {
	rep, _ := runJSON(t, exitPass, "-strategy", "multi", "-rotations", "2", "-duration", "2s", "-window", "300ms")
	rm := driverTotal(t, rep, driverRotating)
	if rm.Errors != 0 {
		t.Errorf("rotatingmysql: %d errors (%v), want 0", rm.Errors, rm.ErrorKinds)
	}
	// The first rotation moves the app to the clone user and leaves the
	// original user's password alone: the plain driver keeps working until
	// the second rotation changes that password.
	var second float64 = -1
	for _, m := range rep.Marks {
		if m.Step == stepSetSecret && m.Rotation == 2 {
			second = m.AtMS
		}
	}
	if second < 0 {
		t.Fatalf("no setSecret mark for rotation 2: %+v", rep.Marks)
	}
	plainSeries := rep.Timeline.Series[1]
	before := 0
	for i := 0; i < int(second/rep.Timeline.BucketMS); i++ {
		before += plainSeries.Errors[i]
	}
	if before != 0 {
		t.Errorf("plain driver: %d errors before the second rotation's setSecret, want 0 with alternating users", before)
	}
	if plain := driverTotal(t, rep, driverPlain); plain.Errors == 0 {
		t.Errorf("plain driver: no error after the second rotation changed its user's password")
	}
}

func TestRotationsBackToBack(t *testing.T) {
	rep, _ := runJSON(t, exitPass, "-rotations", "3", "-duration", "2s", "-window", "200ms")
	checkSingleUser(t, rep)
	finished := 0
	for _, m := range rep.Marks {
		if m.Step == stepFinishSecret {
			finished++
		}
	}
	if finished != 3 {
		t.Errorf("%d finishSecret steps, want 3", finished)
	}
}

func TestAgentSource(t *testing.T) {
	rep, _ := runJSON(t, exitPass, "-source", "agent", "-duration", "2s", "-window", "500ms")
	checkSingleUser(t, rep)
	if !strings.Contains(rep.APICallsCounted, "agent") {
		t.Errorf("API calls counted as %q, want the agent's", rep.APICallsCounted)
	}
	if _, set := os.LookupEnv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"); set {
		t.Errorf("the agent's port variable is left set after the drill")
	}
}

func TestMySQLRoot(t *testing.T) {
	srv := testdb.Require(t)
	cfg := srv.RootConfig()
	if cfg.Net != "tcp" {
		t.Skipf("the test server is reached over %s; -mysql-root needs TCP", cfg.Net)
	}
	ctx := context.Background()
	deniedBefore, err := srv.AccessDeniedErrors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := runJSON(t, exitPass, "-mysql-root", cfg.FormatDSN(), "-duration", "2s", "-window", "500ms")
	checkSingleUser(t, rep)
	if !strings.Contains(rep.Target, "MariaDB") {
		t.Errorf("target %q does not name the MariaDB server", rep.Target)
	}
	deniedAfter, err := srv.AccessDeniedErrors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plain := driverTotal(t, rep, driverPlain)
	// The server refused every login the plain driver failed, each one the
	// rotatingmysql connector absorbed, and the rotator's probe in setSecret.
	if got, want := deniedAfter-deniedBefore, int64(plain.Errors)+int64(deref(driverTotal(t, rep, driverRotating).FailedLoginsAbsorbed)); got < want {
		t.Errorf("server counted %d refused logins, want at least %d", got, want)
	}
	// The drill's account and database are gone.
	var users, dbs int
	if err := srv.Root().QueryRowContext(ctx, `SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'drill\_%'`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if err := srv.Root().QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'drill\_%'`).Scan(&dbs); err != nil {
		t.Fatal(err)
	}
	if users != 0 || dbs != 0 {
		t.Errorf("%d drill users and %d drill databases left on the server", users, dbs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-strategy", "triple"},
		{"-workers", "0"},
		{"-source", "env"},
		{"-aws"},
		{"-secret", "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf"},
		{"-aws", "-secret", "x", "-window", "1s"},
		{"-timeout", "1m"},
		{"extra"},
		{"-agents", "2"},
		{"-quota", "100"},
		{"-processes", "-1"},
		{"-processes", "2", "-agents", "3"},
		{"-processes", "2", "-source", "agent"},
		{"-processes", "2", "-workers", "3"},
		{"-processes", "2", "-process-workers", "0"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != exitCannotRun {
			t.Errorf("%v: exit status %d, want %d", args, code, exitCannotRun)
		}
		if stderr.Len() == 0 {
			t.Errorf("%v: nothing says what is wrong", args)
		}
	}
}

func TestInterrupted(t *testing.T) {
	skipShort(t)
	// The drill is stopped (Ctrl-C) in the middle of the window: it still
	// reports, and fails.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"-duration", "4s", "-window", "2s", "-json", "-q"}, &stdout, &stderr); code != exitFail {
		t.Fatalf("exit status %d, want %d\n%s", code, exitFail, stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Pass || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "interrupted") {
		t.Errorf("problems %q, want interrupted", rep.Problems)
	}
	if rm := driverTotal(t, &rep, driverRotating); rm.Errors != 0 || rm.Queries == 0 {
		t.Errorf("rotatingmysql: %d errors in %d queries (%v): queries cut short by the interrupt must not count as errors", rm.Errors, rm.Queries, rm.ErrorKinds)
	}
}
