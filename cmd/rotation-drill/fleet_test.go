package main

import (
	"path/filepath"
	"testing"
)

// checkFleet asserts what every fleet drill must show: a pass, no
// application error, every process on the new password, and the per-second
// figures adding up to the totals.
func checkFleet(t *testing.T, rep *Report, processes, agents int) *FleetReport {
	t.Helper()
	if !rep.Pass || len(rep.Problems) > 0 {
		t.Errorf("report does not pass: %v", rep.Problems)
	}
	f := rep.Fleet
	if f == nil {
		t.Fatal("the report has no fleet section")
	}
	if f.Processes != processes || f.Agents != agents {
		t.Errorf("fleet of %d processes behind %d agents, want %d and %d", f.Processes, f.Agents, processes, agents)
	}
	if f.AppErrors != 0 || driverTotal(t, rep, driverRotating).Errors != 0 {
		t.Errorf("%d application errors, want 0", f.AppErrors)
	}
	if len(f.Switched) != 1 || f.Switched[0] != processes || f.SwitchedMS[0] < 0 {
		t.Errorf("processes on the new password: %v (after %v ms), want all %d", f.Switched, f.SwitchedMS, processes)
	}
	calls, queries := 0, 0
	for _, s := range f.Seconds {
		calls += s.APIRequests
		queries += s.Queries + s.AppErrors
		if s.APIRequests > f.PeakAPIRate {
			t.Errorf("second %.0f: %d requests above the peak %d", s.AtS, s.APIRequests, f.PeakAPIRate)
		}
	}
	if calls != f.StartupCalls+f.RotationCalls {
		t.Errorf("seconds hold %d calls, startup %d + rotation %d", calls, f.StartupCalls, f.RotationCalls)
	}
	if q := driverTotal(t, rep, driverRotating).Queries; queries != q {
		t.Errorf("seconds hold %d queries, totals %d", queries, q)
	}
	// Every process met the rotation on a new connection: one refused
	// login each, no more (the connector does not dial a refused password
	// again), and at most two per process in any case.
	if f.FailedLogins == 0 || f.FailedLogins > uint64(2*processes) {
		t.Errorf("%d failed logins for %d processes, want 1 to 2 per process", f.FailedLogins, processes)
	}
	return f
}

// TestFleetDrillAPI runs 50 processes on the API, each with its own
// client, against the scaled quota (50 requests/s): each process fetches
// once at start and a few times per rotation, with no application error.
func TestFleetDrillAPI(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "fleet.svg")
	rep, _ := runJSON(t, exitPass, "-processes", "50", "-duration", "6s", "-window", "1s", "-svg", svg)
	f := checkFleet(t, rep, 50, 0)
	if f.Quota != 50 {
		t.Errorf("default quota %v for 50 processes, want 50 (10,000 x 50/10,000)", f.Quota)
	}
	// One fetch per process to start (the drill's own read of the secret
	// adds one; a throttled request retried by the SDK counts twice).
	if f.StartupCalls < 50 || f.StartupCalls > 60 {
		t.Errorf("%d calls at start for 50 processes, want 50 to 60", f.StartupCalls)
	}
	// A rotation costs each process a refresh of AWSCURRENT and a read of
	// AWSPENDING, one more refresh at most, and the SDK's retries of
	// throttled requests.
	if f.CallsPerProcessPerRotation < 1 || f.CallsPerProcessPerRotation > 5 {
		t.Errorf("%.2f calls per process per rotation, want 1 to 5", f.CallsPerProcessPerRotation)
	}
	checkSVG(t, svg)
}

// TestFleetDrillAgents runs 50 processes behind 5 agents: the agents'
// caches answer the processes' start (one call per agent), and a rotation
// costs the agents no more than the processes would on the API.
func TestFleetDrillAgents(t *testing.T) {
	rep, _ := runJSON(t, exitPass, "-processes", "50", "-agents", "5", "-duration", "6s", "-window", "1s")
	f := checkFleet(t, rep, 50, 5)
	// One call per agent; the drill's own read of the secret may land in
	// the start's count too, as in TestFleetDrillAPI.
	if f.StartupCalls < 5 || f.StartupCalls > 6 {
		t.Errorf("%d calls at start behind 5 agents, want 5 or 6: one per agent, its cache answering its other processes", f.StartupCalls)
	}
	if f.Throttled != 0 {
		t.Errorf("%d throttled behind agents, want 0", f.Throttled)
	}
	// The first refresh after 1045 goes through the agent's cache: the
	// first process behind each agent makes it fetch, the others are
	// answered from its cache.
	if f.CallsPerProcessPerRotation > 3 || f.CallsPerAgentPerRotation > 3 {
		t.Errorf("%.2f calls per process, %.1f per agent per rotation, want at most 3 and 3", f.CallsPerProcessPerRotation, f.CallsPerAgentPerRotation)
	}
}
