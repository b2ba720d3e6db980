package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runVirtualJSON runs the virtual drill with args and decodes its report.
// It runs in short mode too: a few hundred virtual processes take well
// under a second.
func runVirtualJSON(t *testing.T, wantExit int, args ...string) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(append([]string{"-virtual"}, args...), "-json", "-q"), &stdout, &stderr)
	if code != wantExit {
		t.Fatalf("exit status %d, want %d\nstderr:\n%s\nstdout:\n%s", code, wantExit, stderr.String(), stdout.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decode the JSON report: %v\n%s", err, stdout.String())
	}
	if rep.Virtual == nil || rep.Fleet == nil {
		t.Fatal("the report has no virtual or fleet section")
	}
	return &rep
}

// TestVirtualRotationCosts runs 300 virtual processes through a managed
// rotation on the API, with the real quota: each process fetches once to
// start and once in the rotation (AWSPENDING after its 1045), pays one
// failed login, and every process moves to the new password with no
// application error. The counts are the library's own decisions (its
// ledger, connect loop and cache rules) on the simulated I/O.
func TestVirtualRotationCosts(t *testing.T) {
	const n = 300
	svg := filepath.Join(t.TempDir(), "virtual.svg")
	rep := runVirtualJSON(t, exitPass, "-processes", "300", "-svg", svg)
	f := checkFleet(t, rep, n, 0)
	v := rep.Virtual
	if f.StartupCalls != n {
		t.Errorf("%d calls at start, want %d (one per process)", f.StartupCalls, n)
	}
	if f.RotationCalls != n || v.RequestsPerProcessPerRotation != 1 || v.ServedPerProcessPerRotation != 1 || v.MaxRequestsOfAProcess != 1 {
		t.Errorf("rotation: %d calls (%.2f sent, %.2f served per process, at most %d by one), want %d: one GetSecretValue (AWSPENDING) per process",
			f.RotationCalls, v.RequestsPerProcessPerRotation, v.ServedPerProcessPerRotation, v.MaxRequestsOfAProcess, n)
	}
	if f.FailedLogins != n || v.MaxFailedLoginsAProcess != 1 {
		t.Errorf("%d failed logins (at most %d in a process), want %d: one per process", f.FailedLogins, v.MaxFailedLoginsAProcess, n)
	}
	if len(rep.Drivers) != 1 || deref(rep.Drivers[0].PendingUsed) != n {
		t.Errorf("drivers %+v: want rotatingmysql's %d switches to AWSPENDING, one per process", rep.Drivers, n)
	}
	if f.Throttled != 0 || v.ProcessesPastBound != 0 || v.ProcessesWithErrors != 0 || f.GaveUp != 0 {
		t.Errorf("throttled %d, processes past the bound %d, with errors %d, gave up %d; want none", f.Throttled, v.ProcessesPastBound, v.ProcessesWithErrors, f.GaveUp)
	}
	// The deploy spreads over one interval (300 ms for 300 processes), then
	// the drill's 10 s.
	if v.Events == 0 || v.SimulatedSeconds != 10.3 {
		t.Errorf("%d events, %v simulated seconds; want some, and 10.3", v.Events, v.SimulatedSeconds)
	}
	checkSVG(t, svg)
}

// TestVirtualSameSeedSameRun: the simulation is deterministic for a seed,
// so a figure in the docs is reproduced by its command.
func TestVirtualSameSeedSameRun(t *testing.T) {
	args := []string{"-processes", "200", "-quota", "60", "-start-spread", "5s", "-seed", "7"}
	a, b := runVirtualJSON(t, exitPass, args...), runVirtualJSON(t, exitPass, args...)
	a.Virtual.WallSeconds, b.Virtual.WallSeconds, a.Virtual.HeapMB, b.Virtual.HeapMB = 0, 0, 0, 0
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Errorf("two runs with seed 7 differ:\n%s\n%s", ja, jb)
	}
}

// TestVirtualAgents runs 300 processes behind 10 simulated agents (30
// each): about one call per agent to start and one per agent in the
// rotation, the first refresh after 1045 going through the agent's cache;
// a process that asks while the agent's own read is under way (20 ms)
// makes it read again (the agent does not coalesce), hence up to 3.
func TestVirtualAgents(t *testing.T) {
	rep := runVirtualJSON(t, exitPass, "-processes", "300", "-agents", "10")
	f := checkFleet(t, rep, 300, 10)
	if f.StartupCalls < 10 || f.StartupCalls > 30 || f.CallsPerAgentPerRotation < 1 || f.CallsPerAgentPerRotation > 3 {
		t.Errorf("%d calls at start, %.1f per agent in the rotation; want 10 to 30 and 1 to 3 (30 per agent without the agent's cache)",
			f.StartupCalls, f.CallsPerAgentPerRotation)
	}
}

// TestVirtualThrottledRotation runs a rotation at 3.3 times the quota (330
// processes, quota 100/s, each dialing once a second; the deploy spread so
// that it is not throttled): the fleet asks for under 1.5 requests per
// process, and every process is on the new password within the
// connection's 10 s bound, with no application error. This is the cache as
// it is (a failure holds every stage) with its Secrets Manager client's
// delay after ThrottlingException, the SDK's doubled (the default of
// -virtual, -sdk-throttle-backoff 2s); with the SDK's own 1 s the fleet
// asks for about 1.66 (TestVirtualThrottledRotationSDKDefault).
func TestVirtualThrottledRotation(t *testing.T) {
	rep := runVirtualJSON(t, exitPass, "-processes", "330", "-quota", "100", "-interval", "1s", "-start-spread", "7s", "-duration", "20s")
	f, v := rep.Fleet, rep.Virtual
	if f.Throttled == 0 {
		t.Fatalf("nothing throttled at 3.3 times the quota: the scenario does not test what it says")
	}
	if v.RequestsPerProcessPerRotation >= 1.5 {
		t.Errorf("%.2f requests per process per rotation at 3.3 x the quota, want under 1.5", v.RequestsPerProcessPerRotation)
	}
	if f.AppErrors != 0 || v.ProcessesPastBound != 0 || f.Switched[0] != 330 || f.SwitchedMS[0] > 10000 {
		t.Errorf("%d application errors, %d processes past the bound, %d on the new password after %.0f ms; want 0, 0, all within 10 s",
			f.AppErrors, v.ProcessesPastBound, f.Switched[0], f.SwitchedMS[0])
	}
}

// TestVirtualThrottledRotationSDKDefault is the same rotation with the
// SDK's own delay after ThrottlingException (1 s): still no application
// error and every process within 10 s, at more requests per process (the
// figure docs/fleet.md gives, 1.6 to 1.8).
func TestVirtualThrottledRotationSDKDefault(t *testing.T) {
	rep := runVirtualJSON(t, exitPass, "-processes", "330", "-quota", "100", "-interval", "1s", "-start-spread", "7s", "-duration", "20s",
		"-sdk-throttle-backoff", "1s")
	f, v := rep.Fleet, rep.Virtual
	if v.RequestsPerProcessPerRotation < 1.5 || v.RequestsPerProcessPerRotation > 2 {
		t.Errorf("%.2f requests per process per rotation with the SDK's 1 s, want 1.5 to 2", v.RequestsPerProcessPerRotation)
	}
	if f.AppErrors != 0 || f.Switched[0] != 330 || f.SwitchedMS[0] > 10000 {
		t.Errorf("%d application errors, %d on the new password after %.0f ms; want 0, all within 10 s", f.AppErrors, f.Switched[0], f.SwitchedMS[0])
	}
}

// TestVirtualOutage: Secrets Manager down (503) for 3 s from just before
// setSecret (5.1 s): the processes' new connections wait in their
// recovery, none past the 10 s bound, and every process learns the new
// password once Secrets Manager answers again.
func TestVirtualOutage(t *testing.T) {
	rep := runVirtualJSON(t, exitPass, "-processes", "100", "-duration", "20s", "-outage-at", "4500ms", "-outage-for", "3s")
	f, v := rep.Fleet, rep.Virtual
	if f.FetchErrors == 0 {
		t.Error("no failed fetch during the outage")
	}
	if f.Switched[0] != 100 || f.AppErrors != 0 || v.ProcessesPastBound != 0 {
		t.Errorf("%d processes on the new password, %d application errors, %d past the bound; want 100, 0 and 0",
			f.Switched[0], f.AppErrors, v.ProcessesPastBound)
	}
}

// TestVirtualFlags: the virtual drill's options need -virtual, and
// -virtual needs -processes.
func TestVirtualFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-virtual"}, "-virtual needs -processes"},
		{[]string{"-processes", "10", "-api-latency", "5ms"}, "-api-latency applies only with -virtual"},
		{[]string{"-processes", "10", "-virtual", "-failure-jitter", "2"}, "-failure-jitter 2: want 0 to 1"},
		{[]string{"-processes", "10", "-virtual", "-otel"}, "not with -mysql-root, -otel"},
		{[]string{"-rotations", "0"}, "-rotations must be at least 1"},
	} {
		var stderr bytes.Buffer
		if _, err := parseOptions(c.args, &stderr); err == nil || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: error %v, stderr %q; want one saying %q", c.args, err, stderr.String(), c.want)
		}
	}
}

// TestVirtualMatchesRealDrill runs the same scenario (100 processes, one
// managed rotation, the scaled quota) in the real fleet drill and in
// virtual time, the virtual latencies set from the real drill's measured
// median query latency, and compares what the library decides: calls per
// process per rotation, failed logins per process and application errors
// agree within 20%. The time until every process uses the new password is
// logged, not asserted: in the real drill it is wall-clock time on a shared
// machine.
func TestVirtualMatchesRealDrill(t *testing.T) {
	real, _ := runJSON(t, exitPass, "-processes", "100")
	p50 := driverTotal(t, real, driverRotating).P50MS
	// Log-normal latencies (σ = 1) with the median query (dial included)
	// of the real run: about 1.65 times the median of one round trip.
	lat := time.Duration(p50 / 1.65 * float64(time.Millisecond)).String()
	virt := runVirtualJSON(t, exitPass, "-processes", "100", "-quota", "100", "-latency-sigma", "1",
		"-api-latency", lat, "-login-latency", lat, "-query-latency", lat)
	rf, vf := real.Fleet, virt.Fleet
	within := func(name string, r, v float64) {
		t.Helper()
		if d := v - r; d > 0.2*r+1e-9 || d < -0.2*r-1e-9 {
			t.Errorf("%s: real %.3f, virtual %.3f: more than 20%% apart", name, r, v)
		}
	}
	within("calls per process per rotation", rf.CallsPerProcessPerRotation, vf.CallsPerProcessPerRotation)
	within("failed logins per process", float64(rf.FailedLogins)/100, float64(vf.FailedLogins)/100)
	if rf.AppErrors != 0 || vf.AppErrors != 0 {
		t.Errorf("application errors: real %d, virtual %d; want 0 and 0", rf.AppErrors, vf.AppErrors)
	}
	t.Logf("every process on the new password: real %v ms, virtual %v ms (latency median %s, from the real p50 %.1f ms)",
		rf.SwitchedMS, vf.SwitchedMS, lat, p50)
}
