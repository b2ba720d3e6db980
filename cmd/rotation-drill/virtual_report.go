package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
)

// VirtualReport is what the virtual-time fleet drill adds to the fleet's
// figures: per-process costs, who waited past the connection's 10 s
// bound, the settings of the models, and what the run cost.
type VirtualReport struct {
	// Settings of the models.
	APILatencyMS       float64 `json:"api_latency_ms"`
	LoginLatencyMS     float64 `json:"login_latency_ms"`
	LatencySigma       float64 `json:"latency_sigma"`
	SDKThrottleRetries bool    `json:"sdk_throttle_retries"`
	SDKThrottleBackoff float64 `json:"sdk_throttle_backoff_ms"`
	FailureJitter      float64 `json:"failure_jitter"`
	FailureSteps       int     `json:"failure_steps"`
	SharedBackoff      bool    `json:"shared_backoff"`
	StartSpreadMS      float64 `json:"start_spread_ms"`
	Seed               uint64  `json:"seed"`
	// RequestsPerProcessPerRotation counts the GetSecretValue requests
	// sent from createSecret on (SDK retries included, throttled ones
	// included; with -agents, the agents' requests), per process and
	// rotation, as the fleet's CallsPerProcessPerRotation;
	// ServedPerProcessPerRotation those that Secrets Manager served.
	RequestsPerProcessPerRotation float64 `json:"requests_per_process_per_rotation"`
	ServedPerProcessPerRotation   float64 `json:"served_per_process_per_rotation"`
	// MaxRequestsOfAProcess is the most requests one process sent from
	// createSecret on.
	MaxRequestsOfAProcess   int     `json:"max_requests_of_a_process"`
	FailedLoginsPerProcess  float64 `json:"failed_logins_per_process"`
	MaxFailedLoginsAProcess int     `json:"max_failed_logins_of_a_process"`
	// SwitchedP50MS and SwitchedP99MS: time from setSecret until a process
	// first logged in with the new password (the last rotation).
	SwitchedP50MS float64 `json:"switched_p50_ms"`
	// SwitchedExactMS is, per rotation, when the last process switched,
	// exactly; the fleet's SwitchedMS is when the real drill's 100 ms
	// sampler would have seen it.
	SwitchedExactMS []float64 `json:"switched_exact_ms"`
	SwitchedP99MS   float64   `json:"switched_p99_ms"`
	// ProcessesPastBound: processes with a Connect that gave up (the 10 s
	// retry bound, or nothing to dial); ProcessesWithErrors: processes with
	// an application error.
	ProcessesPastBound  int     `json:"processes_past_bound"`
	ProcessesWithErrors int     `json:"processes_with_errors"`
	MaxConnectMS        float64 `json:"max_connect_ms"`
	// PeakOverQuota is the peak rate of requests over the quota.
	PeakOverQuota float64 `json:"peak_over_quota"`
	// The run's own cost.
	SimulatedSeconds float64 `json:"simulated_seconds"`
	Events           uint64  `json:"events"`
	WallSeconds      float64 `json:"wall_seconds"`
	HeapMB           float64 `json:"heap_mb"`
}

// report builds the drill's report from the simulation.
func (s *vsim) report(end, wall time.Duration) *Report {
	o := s.o
	n := len(s.procs)
	rots := max(o.rotations, 1)
	rep := &Report{
		Target:   "virtual time: simulated database and Secrets Manager, the library's ledger, connect loop and cache rules",
		SecretID: "(simulated)", Strategy: "single", Source: "api",
		Workers: n * o.processWorkers, FreshWorkers: n * ((o.processWorkers + 1) / 2),
		Rotations: o.rotations, WindowMS: ms(o.window), ElapsedMS: ms(end), ShutdownMS: ms(end),
		APICallsCounted: "GetSecretValue requests the simulated Secrets Manager received, served and throttled",
		Pass:            true, Marks: s.marks,
		Timeline: Timeline{BucketMS: ms(bucket), Series: []Series{{Driver: driverRotating, Queries: s.buckets, Errors: s.errBuckets}}},
	}
	if o.agents > 0 {
		rep.Source = "agent"
		rep.APICallsCounted = "GetSecretValue calls the simulated agents made"
	}
	refused, calls := uint64(s.authRefused), s.requests
	rep.Drivers = []DriverTotal{{Driver: driverRotating, Queries: s.queries + s.appErrors, Errors: s.appErrors,
		P50MS: s.latencies.quantile(0.5), P99MS: s.latencies.quantile(0.99),
		FailedLoginsAbsorbed: &refused, APICalls: &calls, PendingUsed: &s.pendingUsed}}

	f := &FleetReport{Processes: n, Agents: o.agents, WorkersPerProcess: o.processWorkers,
		IntervalMS: ms(s.interval), Quota: s.quota, Counted: rep.APICallsCounted}
	f.QuotaNote = "set with -quota"
	if o.quota <= 0 {
		f.QuotaNote = "the account's real quota: virtual processes are cheap, so N stands for N"
	}
	for i, v := range s.seconds {
		f.Seconds = append(f.Seconds, FleetSecond{AtS: float64(i), APIRequests: v.requests, Throttled: v.throttled,
			AppErrors: v.appErrors, FailedLogins: uint64(v.failedLogins), Queries: v.queries})
		if v.requests > f.PeakAPIRate {
			f.PeakAPIRate, f.PeakAt = v.requests, float64(i)
		}
		f.Throttled += v.throttled
		if !s.rotStart.IsZero() && i >= int(s.rotStart.Sub(s.clk.epoch)/time.Second) {
			f.PeakRotationRate = max(f.PeakRotationRate, v.requests)
		} else {
			f.PeakStartupRate = max(f.PeakStartupRate, v.requests)
		}
	}
	f.RotationCalls = s.rotRequests
	f.StartupCalls = s.requests - s.rotRequests
	if o.rotations > 0 {
		f.CallsPerProcessPerRotation = float64(s.rotRequests) / float64(n) / float64(rots)
		if o.agents > 0 {
			f.CallsPerAgentPerRotation = float64(s.rotRequests) / float64(o.agents) / float64(rots)
		}
	}
	f.FailedLogins = uint64(s.authRefused)
	f.FailedLoginsPerRotation = float64(s.authRefused) / float64(rots)
	f.AppErrors, f.GaveUp, f.FetchErrors = s.appErrors, uint64(s.gaveUp), uint64(s.fetchErrors)

	v := &VirtualReport{
		APILatencyMS: ms(s.apiLat), LoginLatencyMS: ms(s.loginLat), LatencySigma: o.latencySigma, SDKThrottleRetries: o.sdkThrottleRetries, SDKThrottleBackoff: ms(o.sdkThrottleBackoff),
		FailureJitter: o.failureJitter, FailureSteps: o.failureSteps, SharedBackoff: o.sharedBackoff, StartSpreadMS: ms(s.spread), Seed: o.seed,
		SimulatedSeconds: end.Seconds(), Events: s.clk.ran, WallSeconds: wall.Seconds(),
		PeakOverQuota: float64(f.PeakAPIRate) / s.quota,
	}
	if o.rotations > 0 {
		v.RequestsPerProcessPerRotation = f.CallsPerProcessPerRotation
		v.ServedPerProcessPerRotation = float64(s.rotServed) / float64(n) / float64(rots)
		v.FailedLoginsPerProcess = float64(s.authRefused) / float64(n) / float64(rots)
	}
	var waits []time.Duration
	for _, p := range s.procs {
		v.MaxRequestsOfAProcess = max(v.MaxRequestsOfAProcess, p.rotRequests)
		v.MaxFailedLoginsAProcess = max(v.MaxFailedLoginsAProcess, p.authRefused)
		if p.gaveUp > 0 {
			v.ProcessesPastBound++
		}
		if p.appErrors > 0 {
			v.ProcessesWithErrors++
		}
		v.MaxConnectMS = max(v.MaxConnectMS, ms(p.maxWait))
	}
	for r, rot := range s.rotations {
		var last time.Duration
		count := 0
		waits = waits[:0]
		for _, p := range s.procs {
			if t := p.switched[r]; !t.IsZero() {
				count++
				last = max(last, t.Sub(rot.setAt))
				waits = append(waits, t.Sub(rot.setAt))
			}
		}
		f.Switched = append(f.Switched, count)
		if count == n {
			// As the real fleet drill samples it: at the next tick of its
			// 100 ms sampler after the switch.
			at := rot.setAt.Sub(s.clk.epoch) + last
			sampled := (at + fleetSample - 1) / fleetSample * fleetSample
			v.SwitchedExactMS = append(v.SwitchedExactMS, ms(last))
			f.SwitchedMS = append(f.SwitchedMS, ms(sampled-rot.setAt.Sub(s.clk.epoch)))
		} else {
			f.SwitchedMS = append(f.SwitchedMS, -1)
			f.Problems = append(f.Problems, fmt.Sprintf("rotation %d: %d of %d processes never used the new password", r+1, n-count, n))
		}
	}
	if len(waits) > 0 {
		slices.Sort(waits)
		v.SwitchedP50MS = ms(waits[len(waits)/2])
		v.SwitchedP99MS = ms(waits[min(len(waits)-1, len(waits)*99/100)])
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	v.HeapMB = float64(m.HeapAlloc) / (1 << 20)
	rep.Fleet, rep.Virtual = f, v
	for _, p := range f.Problems {
		rep.fail(p)
	}
	if s.appErrors > 0 {
		rep.fail(fmt.Sprintf("the rotatingmysql workers saw %s", plural(s.appErrors, wordAppErrors)))
	}
	rep.Verdict = rep.verdict()
	return rep
}

// writeText prints the virtual drill's own figures, after the fleet's.
func (v *VirtualReport) writeText(w io.Writer, f *FleetReport) {
	fmt.Fprintf(w, "\nvirtual time: %.1f simulated seconds, %s events in %.1fs of wall time (heap %.0f MB)\n",
		v.SimulatedSeconds, thousands(v.Events), v.WallSeconds, v.HeapMB)
	fmt.Fprintf(w, "  models: API latency %.0f ms, login latency %.0f ms (log-normal σ %.1f; 0: uniform ±50%%); SDK retries of throttling: %v (base %v); cache failure backoff jitter: ±%.0f%%, %d doublings, shared by the stages: %v; deploy spread over %v; seed %d\n",
		v.APILatencyMS, v.LoginLatencyMS, v.LatencySigma, v.SDKThrottleRetries, time.Duration(v.SDKThrottleBackoff*float64(time.Millisecond)), 100*v.FailureJitter, v.FailureSteps, v.SharedBackoff, time.Duration(v.StartSpreadMS*float64(time.Millisecond)), v.Seed)
	fmt.Fprintf(w, "  per process per rotation: %.2f requests sent (%.2f served; at most %d by one process), %.2f failed logins (at most %d)\n",
		v.RequestsPerProcessPerRotation, v.ServedPerProcessPerRotation, v.MaxRequestsOfAProcess, v.FailedLoginsPerProcess, v.MaxFailedLoginsAProcess)
	if len(f.SwitchedMS) > 0 {
		fmt.Fprintf(w, "  on the new password after setSecret: p50 %.2fs, p99 %.2fs, all %s (sampled every 100 ms as the real drill does)\n", v.SwitchedP50MS/1000, v.SwitchedP99MS/1000, switchedAll(f))
	}
	fmt.Fprintf(w, "  processes whose Connect gave up (past the 10 s bound): %d; with application errors: %d; longest Connect %.2fs\n",
		v.ProcessesPastBound, v.ProcessesWithErrors, v.MaxConnectMS/1000)
	fmt.Fprintf(w, "  peak rate %.2f x the quota\n", v.PeakOverQuota)
}

func switchedAll(f *FleetReport) string {
	d := f.SwitchedMS[len(f.SwitchedMS)-1]
	if d < 0 {
		return fmt.Sprintf("not reached (%d of %d)", f.Switched[len(f.Switched)-1], f.Processes)
	}
	return fmt.Sprintf("%.2fs", d/1000)
}
