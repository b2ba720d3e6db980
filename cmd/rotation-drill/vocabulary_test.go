package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// oldWords are the words the drill used before it spoke one vocabulary.
var oldWords = []string{"auth retries hidden", "SM calls", "app errors", "API requests", " q/s", "\nerrors of"}

// checkVocabulary asserts that text uses the drill's words: every "errors"
// is "application errors", and none of the old words is left.
func checkVocabulary(t *testing.T, what, text string) {
	t.Helper()
	if n, app := strings.Count(text, "errors"), strings.Count(text, wordAppErrors); n != app {
		t.Errorf("%s: %d times \"errors\", %d of them \"application errors\":\n%s", what, n, app, text)
	}
	for _, w := range oldWords {
		if strings.Contains(text, w) {
			t.Errorf("%s: old word %q:\n%s", what, w, text)
		}
	}
}

func TestThousandsAndPlural(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{thousands(0), "0"},
		{thousands(999), "999"},
		{thousands(1000), "1,000"},
		{thousands(12345), "12,345"},
		{thousands(int64(-1234567)), "-1,234,567"},
		{thousands(uint64(100000)), "100,000"},
		{plural(1, wordQueries), "1 query"},
		{plural(12345, wordQueries), "12,345 queries"},
		{plural(0, wordAppErrors), "0 application errors"},
		{plural(1, wordAppErrors), "1 application error"},
		{plural(uint64(1), wordAbsorbed), "1 failed login absorbed"},
		{plural(uint64(3), wordAbsorbed), "3 failed logins absorbed"},
		{plural(1, wordAPICalls), "1 API call"},
		{plural(4, wordAPICalls), "4 API calls"},
		{plural(uint64(1), "logins"), "1 login"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestTotalsText(t *testing.T) {
	absorbed, calls := uint64(3), 4
	rm := DriverTotal{Driver: driverRotating, Queries: 12345, FailedLoginsAbsorbed: &absorbed, APICalls: &calls}
	if got, want := totalsText(rm), "12,345 queries, 0 application errors, 3 failed logins absorbed, 4 API calls"; got != want {
		t.Errorf("rotatingmysql: %q, want %q", got, want)
	}
	plain := DriverTotal{Driver: driverPlain, Queries: 3329, Errors: 1217}
	if got, want := totalsText(plain), "3,329 queries, 1,217 application errors"; got != want {
		t.Errorf("mysql: %q, want %q", got, want)
	}
}

// TestLiveLine checks the line printed each second: rates say "/s",
// totals are labelled "totals", and the words are the report's.
func TestLiveLine(t *testing.T) {
	absorbed, calls := uint64(2), 3
	line := liveLine(4, stepWindow,
		liveFigures{driver: driverRotating, queriesPerSec: 344, errorsPerSec: 0, errors: 0, absorbed: &absorbed, calls: &calls},
		liveFigures{driver: driverPlain, queriesPerSec: 352, errorsPerSec: 175, errors: 259})
	lines := strings.Split(strings.TrimSuffix(line, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per driver:\n%s", len(lines), line)
	}
	for _, want := range []string{"4.00s", "window", "rotatingmysql", "344 queries/s", "0 application errors/s",
		"totals: 0 application errors, 2 failed logins absorbed, 3 API calls"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("rotatingmysql line lacks %q: %q", want, lines[0])
		}
	}
	for _, want := range []string{"mysql", "352 queries/s", "175 application errors/s", "totals: 259 application errors"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("mysql line lacks %q: %q", want, lines[1])
		}
	}
	if strings.Contains(lines[1], wordAbsorbed) || strings.Contains(lines[1], wordAPICalls) {
		t.Errorf("mysql line has figures the plain driver does not have: %q", lines[1])
	}
	// The rates line up under each other.
	if a, b := strings.Index(lines[0], "queries/s"), strings.Index(lines[1], "queries/s"); a != b {
		t.Errorf("queries/s at column %d and %d:\n%s", a, b, line)
	}
	checkVocabulary(t, "live line", line)

	one := liveLine(1, stepBefore, liveFigures{driver: driverRotating, queriesPerSec: 10, errors: 1, absorbed: new(uint64), calls: new(int)})
	if !strings.Contains(one, "totals: 1 application error, 0 failed logins absorbed, 0 API calls") {
		t.Errorf("singular and zero totals: %q", one)
	}
}

func TestMarkLine(t *testing.T) {
	for step, want := range map[string]string{
		stepCreateSecret: "AWSPENDING created (createSecret), rotation 2",
		stepSetSecret:    "password changed (setSecret), rotation 2",
		stepTestSecret:   "new password tested (testSecret), rotation 2",
		stepFinishSecret: "AWSCURRENT moved (finishSecret), rotation 2",
		stepWindow:       "the window begins",
		stepAfter:        "the rotation is over",
	} {
		got := markLine(mark{Step: step, Rotation: 2, At: 2500 * time.Millisecond})
		if !strings.HasPrefix(got, "  2.50s  -- ") || !strings.Contains(got, want) {
			t.Errorf("%s: %q, want the time and %q", step, got, want)
		}
	}
}

// sampleReport is a report as a default drill makes it: 10 s, the
// rotation at 2.5 s, the window 3 s, the shutdown at 10.003 s and the
// report built 0.3 s later.
func sampleReport() *Report {
	absorbed, pending, calls := uint64(3), uint64(1), 4
	r := &Report{
		Target: "embedded go-mysql-server v0.20.0, emulated Secrets Manager", Strategy: "single", Source: "api",
		Workers: 4, PlainWorkers: 4, FreshWorkers: 2, PlainFreshWorkers: 2, Rotations: 1,
		WindowMS: 3000, ElapsedMS: 10300, ShutdownMS: 10003, Pass: true,
		APICallsCounted: "requests the Secrets Manager emulator received",
		Drivers: []DriverTotal{
			{Driver: driverRotating, Queries: 12345, FailedLoginsAbsorbed: &absorbed, Recovered: &pending, PendingUsed: &pending, APICalls: &calls},
			{Driver: driverPlain, Queries: 3329, Errors: 1217, ErrorsInWindow: 521, ErrorsAfter: 696,
				ErrorKinds: map[string]int{"Error 1045: Access denied for user 'app'": 1217}},
		},
		Marks: []Mark{
			{Step: stepBefore, AtMS: 0}, {Step: stepCreateSecret, Rotation: 1, AtMS: 2500}, {Step: stepSetSecret, Rotation: 1, AtMS: 2501},
			{Step: stepTestSecret, Rotation: 1, AtMS: 2502}, {Step: stepWindow, Rotation: 1, AtMS: 2503},
			{Step: stepFinishSecret, Rotation: 1, AtMS: 5503}, {Step: stepAfter, Rotation: 1, AtMS: 5503},
		},
		Timeline: Timeline{BucketMS: 100},
	}
	for _, name := range []string{stepBefore, stepCreateSecret, stepSetSecret, stepTestSecret, stepWindow, stepFinishSecret, stepAfter} {
		r.Steps = append(r.Steps, StepRow{Step: name, Driver: driverRotating, FailedLoginsAbsorbed: new(uint64), APICalls: new(int)},
			StepRow{Step: name, Driver: driverPlain})
	}
	for _, d := range []string{driverRotating, driverPlain} {
		s := Series{Driver: d, Queries: make([]int, 103), Errors: make([]int, 103)}
		for i := range s.Queries {
			s.Queries[i] = 34
			if d == driverPlain && i >= 25 {
				s.Queries[i], s.Errors[i] = 17, 17
			}
		}
		r.Timeline.Series = append(r.Timeline.Series, s)
	}
	r.Verdict = r.verdict()
	return r
}

// TestReportVocabulary checks the text report: its columns and verdict
// say queries, application errors, failed logins absorbed and API calls.
func TestReportVocabulary(t *testing.T) {
	var b bytes.Buffer
	sampleReport().writeText(&b)
	out := b.String()
	for _, want := range []string{
		"queries  application errors", "failed logins absorbed  API calls",
		"application errors of mysql:",
		"PASS: rotatingmysql: 12,345 queries, 0 application errors, 3 failed logins absorbed, 4 API calls (1 login with AWSPENDING).",
		"mysql (password read once): 3,329 queries, 1,217 application errors (521 during the window, 696 after it).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	checkVocabulary(t, "report", out)

	r := sampleReport()
	r.Drivers[0].Errors = 2
	r.Rotations = 1
	rep := *r
	rep.Pass = true
	rep.Problems = nil
	rep.fail("the rotatingmysql workers saw " + plural(2, wordAppErrors))
	if !strings.HasPrefix(rep.Verdict, "FAIL: the rotatingmysql workers saw 2 application errors. rotatingmysql: 12,345 queries, 2 application errors") {
		t.Errorf("verdict %q", rep.Verdict)
	}
}
