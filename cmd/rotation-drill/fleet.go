package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/simproc"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// fleetSample is how often the fleet drill reads the processes' counters
// (failed logins, the version each uses) and the agents' store reads.
const fleetSample = 100 * time.Millisecond

// fleetTarget is what the fleet drill needs of an emulated target: the
// emulator (its quota and per-second counts) and the secret.
type fleetTarget struct {
	sm  *rotatingmysqltest.SecretsManager
	arn string
}

// process is one simulated application process: its own connector (its own
// SDK client and HTTP connections, or its own agent client), its own pools
// and workers. Nothing is shared between processes, as between programs.
type process struct {
	conn   *rotatingmysql.Connector
	group  *workerGroup
	closer func() // closes what the process made for its SDK client

	// switched[r] is when the process first used the version that rotation
	// r+1 made (Stats().CurrentVersionID); zero until then.
	switched []time.Time
}

// fleet is the simulation's state, shared with the sampler.
type fleet struct {
	o      *options
	ft     *fleetTarget
	procs  []*process
	agents []*rotatingmysqltest.Agent
	start  time.Time // the timeline's start

	mu        sync.Mutex
	rotations []fleetRotation // one per rotation begun
	// samples of the cumulative failed logins and agent store reads, at
	// fleetSample intervals
	samples []fleetPoint
	closed  bool
}

// fleetRotation is what the sampler needs to know of a rotation: the
// version it made and when the database stopped accepting the old password.
type fleetRotation struct {
	version string
	setAt   time.Time
}

type fleetPoint struct {
	at           time.Time
	failedLogins uint64
	agentReads   int
}

// defaultQuota is the GetSecretValue quota that puts n simulated processes
// in the situation of a fleet of 10,000 processes against the account's
// 10,000 requests per second: the quota scaled by n/10,000.
func defaultQuota(n int) float64 {
	return float64(rotatingmysqltest.GetSecretValueQuota) * float64(n) / 10000
}

// fleetInterval is the pause between two queries of a worker when -interval
// is not given: the whole fleet makes about 2,000 queries a second (half of
// them on new connections), which the embedded server and the 2-core
// machines this runs on can serve.
func fleetInterval(o *options) time.Duration {
	if o.intervalSet {
		return o.interval
	}
	return max(o.interval, time.Duration(o.processes*o.processWorkers/2)*time.Millisecond)
}

// runFleet runs the fleet drill on t: N processes, each with its own
// connector and workers, against the emulator with a quota, behind M
// agents or on the API. The timeline is that of runDrill.
func runFleet(ctx context.Context, o *options, t *target, progress io.Writer) (*Report, error) {
	ft := t.fleet
	if ft == nil {
		return nil, errors.New("-processes needs the emulated Secrets Manager (not -aws)")
	}
	quota := o.quota
	if quota <= 0 {
		quota = defaultQuota(o.processes)
	}
	ft.sm.SetQuota("GetSecretValue", rotatingmysqltest.Quota{Rate: quota})
	ft.sm.SetQuota("DescribeSecret", rotatingmysqltest.Quota{Rate: quota * rotatingmysqltest.DescribeSecretQuota / rotatingmysqltest.GetSecretValueQuota})
	f := &fleet{o: o, ft: ft}
	defer f.close(progress)

	if o.agents > 0 {
		token := rand.Text()
		for range o.agents {
			a, err := rotatingmysqltest.NewAgent(ft.sm.Store(), token)
			if err != nil {
				return nil, fmt.Errorf("start a fake agent: %w", err)
			}
			f.agents = append(f.agents, a)
		}
		restore := setenv(f.agents[0].Env()) // the token; each process names its agent
		defer restore()
	}
	interval := fleetInterval(o)
	rec := newRecorder(driverRotating)
	for i := range o.processes {
		p, err := f.newProcess(i, rec, interval)
		if err != nil {
			return nil, fmt.Errorf("process %d: %w", i+1, err)
		}
		f.procs = append(f.procs, p)
	}

	apiCalls := func() int {
		if len(f.agents) > 0 {
			return f.agentReads()
		}
		return ft.sm.Calls("GetSecretValue")
	}
	calls0 := apiCalls()
	snapshot := func() counters {
		return counters{AuthRefused: f.stats().AuthRefused, APICalls: apiCalls() - calls0}
	}
	tl := newTimeline(snapshot)
	f.start = tl.start
	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var wg sync.WaitGroup
	for _, p := range f.procs {
		p.group.run(work, &wg, tl)
	}
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		f.sample(sampling, tl, rec, quota, progress)
	}()

	quarter := o.duration / 4
	var rotErr error
	if err := sleep(ctx, quarter); err == nil {
		for i := 1; i <= o.rotations && rotErr == nil; i++ {
			rotErr = t.rotation.rotate(ctx, func(step string) {
				if step == stepSetSecret {
					f.rotationBegan()
				}
				tl.mark(step, i)
			})
			if rotErr != nil {
				rotErr = fmt.Errorf("rotation %d: %w", i, rotErr)
			}
		}
		tl.mark(stepAfter, o.rotations)
		sleep(ctx, max(o.duration-tl.since(), quarter))
	}
	interrupted := ctx.Err() != nil
	tl.shutdown()
	stopWork()
	wg.Wait()
	stopSampling()
	<-sampled
	final := snapshot()
	elapsed := tl.since()
	stats := f.stats()

	o2 := *o
	o2.workers, o2.plainWorkers = o.processWorkers, 0
	rep := buildReport(&o2, t, tl, final, elapsed, stats, rec, newRecorder(driverPlain))
	rep.Workers, rep.FreshWorkers = o.processes*o.processWorkers, o.processes*((o.processWorkers+1)/2)
	rep.Fleet = f.report(tl, rec, quota, interval)
	rep.APICallsCounted = rep.Fleet.Counted
	for _, p := range rep.Fleet.Problems {
		rep.fail(p)
	}
	rep.failRun(interrupted, rotErr)
	return rep, nil
}

// newProcess makes simulated process i: in API mode with an SDK client and
// an HTTP transport of its own (a separate program would have its own),
// behind agent i mod M in agent mode.
func (f *fleet) newProcess(i int, rec *recorder, interval time.Duration) (*process, error) {
	o := f.o
	cfg := rotatingmysql.NewConfig(f.ft.arn)
	// Simulated processes are separate programs: no cache shared between
	// them (in agent mode they would share one, as their endpoint and
	// options are the same).
	// Each simulated process keeps its own cache, evidence and failed-login
	// budget, as a separate process does.
	opts := []rotatingmysql.Option{rotatingmysql.WithLogger(o.logger), simproc.OwnAccounts().(rotatingmysql.Option), rotatingmysql.WithTracer(o.tracer)}
	if o.ttl > 0 {
		opts = append(opts, rotatingmysql.WithTTL(o.ttl))
	}
	closer := func() {}
	if len(f.agents) > 0 {
		cfg.Source = "agent"
		opts = append(opts, rotatingmysql.WithAgentEndpoint(f.agents[i%len(f.agents)].URL()))
	} else {
		tr := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}
		awsCfg := f.ft.sm.AWSConfig()
		awsCfg.HTTPClient = &http.Client{Transport: tr}
		opts = append(opts, rotatingmysql.WithSecretsManagerClient(secretsmanager.NewFromConfig(awsCfg)))
		closer = tr.CloseIdleConnections
	}
	if err := cfg.Apply(opts...); err != nil {
		return nil, err
	}
	conn, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	g := newWorkerGroup(rec, conn, o.processWorkers, interval)
	// A small pool per process: the pooled workers' connections only.
	g.pooled.SetMaxOpenConns(max(g.nPooled, 1))
	return &process{conn: conn, group: g, closer: closer}, nil
}

// stats sums the processes' connector counters.
func (f *fleet) stats() rotatingmysql.Stats {
	var s rotatingmysql.Stats
	for _, p := range f.procs {
		ps := p.conn.Stats()
		s.AuthRefused += ps.AuthRefused
		s.Recovered += ps.Recovered
		s.PendingUsed += ps.PendingUsed
		s.GaveUp += ps.GaveUp
		s.FetchErrors += ps.FetchErrors
	}
	return s
}

func (f *fleet) agentReads() int {
	n := 0
	for _, a := range f.agents {
		n += a.StoreReads()
	}
	return n
}

// rotationBegan records the version the rotation under way made
// (AWSPENDING, from createSecret) as setSecret starts.
func (f *fleet) rotationBegan() {
	v, err := f.ft.sm.Store().GetSecretValue(f.ft.arn, "", rotatingmysqltest.StagePending)
	f.mu.Lock()
	defer f.mu.Unlock()
	r := fleetRotation{setAt: time.Now()}
	if err == nil {
		r.version = v.VersionID
	}
	f.rotations = append(f.rotations, r)
}

// sample reads the processes' counters every fleetSample until ctx ends,
// and prints a line a second unless -q.
func (f *fleet) sample(ctx context.Context, tl *timeline, rec *recorder, quota float64, w io.Writer) {
	tick := time.NewTicker(fleetSample)
	defer tick.Stop()
	if !f.o.quiet {
		fmt.Fprintf(w, "rotation-drill: %d processes (%d workers each, no cache shared), %s; quota %s GetSecretValue/s\n",
			f.o.processes, f.o.processWorkers, f.behind(), quotaText(quota))
		tl.onMark = func(m mark) { fmt.Fprint(w, markLine(m)) }
	}
	var last fleetPoint
	var lastErrs int64
	lastPrint := time.Now()
	for {
		select {
		case <-ctx.Done():
			f.samplePoint()
			return
		case <-tick.C:
		}
		pt := f.samplePoint()
		if f.o.quiet || pt.at.Sub(lastPrint) < time.Second {
			continue
		}
		lastPrint = pt.at
		errs := rec.errors.Load()
		api, throttled := pt.agentReads-last.agentReads, 0
		if len(f.agents) == 0 {
			api, throttled = f.apiLastSecond()
		}
		fmt.Fprintf(w, "%6.2fs  %-12s  %5d %s/s (%d throttled)  %4d %s/s  %4d %s/s  on the new password: %s\n",
			tl.since().Seconds(), tl.name(tl.current()), api, wordAPICalls, throttled, errs-lastErrs, wordAppErrors,
			pt.failedLogins-last.failedLogins, wordAbsorbed, f.switchedText())
		last, lastErrs = pt, errs
	}
}

// apiLastSecond returns the GetSecretValue requests and throttled requests
// of the last complete second the emulator counted.
func (f *fleet) apiLastSecond() (requests, throttled int) {
	rs := f.ft.sm.RequestRates("GetSecretValue")
	i := int(time.Since(f.ft.sm.RateOrigin())/time.Second) - 1
	if i < 0 || i >= len(rs) {
		return 0, 0
	}
	return rs[i].Requests(), rs[i].Throttled
}

// samplePoint records the counters now and the processes that have moved
// to the newest rotation's version.
func (f *fleet) samplePoint() fleetPoint {
	pt := fleetPoint{at: time.Now(), agentReads: f.agentReads()}
	f.mu.Lock()
	rots := slices.Clone(f.rotations)
	f.mu.Unlock()
	for _, p := range f.procs {
		s := p.conn.Stats()
		pt.failedLogins += s.AuthRefused
		for len(p.switched) < len(rots) {
			p.switched = append(p.switched, time.Time{})
		}
		for r, rot := range rots {
			if p.switched[r].IsZero() && rot.version != "" && s.CurrentVersionID == rot.version {
				p.switched[r] = pt.at
			}
		}
	}
	f.mu.Lock()
	f.samples = append(f.samples, pt)
	f.mu.Unlock()
	return pt
}

// switchedText says how many processes use the latest rotation's version.
func (f *fleet) switchedText() string {
	f.mu.Lock()
	r := len(f.rotations) - 1
	f.mu.Unlock()
	if r < 0 {
		return "-"
	}
	n := 0
	for _, p := range f.procs {
		if r < len(p.switched) && !p.switched[r].IsZero() {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(f.procs))
}

func (f *fleet) behind() string {
	if len(f.agents) > 0 {
		return fmt.Sprintf("behind %d emulated agents (%d processes each, sharing its cache)", len(f.agents), (len(f.procs)+len(f.agents)-1)/len(f.agents))
	}
	return "each with its own Secrets Manager client"
}

// close closes the processes' pools and their HTTP connections, then the
// agents.
func (f *fleet) close(progress io.Writer) {
	var errs []error
	for _, p := range f.procs {
		errs = append(errs, p.group.Close())
		p.closer()
	}
	for _, a := range f.agents {
		errs = append(errs, a.Close())
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(progress, "rotation-drill: close the fleet: %v\n", err)
	}
}

func quotaText(q float64) string {
	if q == float64(int(q)) {
		return fmt.Sprintf("%d", int(q))
	}
	return fmt.Sprintf("%.1f", q)
}

// FleetReport is what the fleet drill (-processes) measured, on top of the
// report's steps and timeline (whose figures are the fleet's sums).
type FleetReport struct {
	Processes         int     `json:"processes"`
	Agents            int     `json:"agents"`
	WorkersPerProcess int     `json:"workers_per_process"`
	IntervalMS        float64 `json:"interval_ms"`
	// Quota is the emulator's GetSecretValue quota in requests per
	// second; QuotaNote says how it was chosen.
	Quota     float64 `json:"quota_per_second"`
	QuotaNote string  `json:"quota_note"`
	// Counted says what the API figures count.
	Counted string        `json:"api_calls_counted"`
	Seconds []FleetSecond `json:"seconds"`
	// PeakAPIRate is the most GetSecretValue requests (served and
	// throttled) in one second, PeakAt when (seconds since the start);
	// PeakStartupRate and PeakRotationRate the peaks before the first
	// rotation (the processes starting: what an unjittered TTL refresh of
	// a fleet started together does too) and from its start on.
	PeakAPIRate      int     `json:"peak_api_rate"`
	PeakAt           float64 `json:"peak_at_s"`
	PeakStartupRate  int     `json:"peak_startup_api_rate"`
	PeakRotationRate int     `json:"peak_rotation_api_rate"`
	Throttled        int     `json:"throttled"`
	StartupCalls     int     `json:"startup_calls"`
	RotationCalls    int     `json:"rotation_calls"`
	// CallsPerProcessPerRotation is RotationCalls / processes /
	// rotations; CallsPerAgentPerRotation the same per agent.
	CallsPerProcessPerRotation float64 `json:"calls_per_process_per_rotation"`
	CallsPerAgentPerRotation   float64 `json:"calls_per_agent_per_rotation,omitempty"`
	FailedLogins               uint64  `json:"failed_logins"`
	FailedLoginsPerRotation    float64 `json:"failed_logins_per_rotation"`
	// SwitchedMS[r] is the time from rotation r+1's setSecret until every
	// process used the new version (-1: not all did); Switched[r] how
	// many processes did.
	SwitchedMS  []float64 `json:"switched_ms"`
	Switched    []int     `json:"switched"`
	AppErrors   int       `json:"application_errors"`
	GaveUp      uint64    `json:"gave_up"`
	FetchErrors uint64    `json:"fetch_errors"`
	Problems    []string  `json:"problems,omitempty"`
}

// FleetSecond is one second of the fleet drill, from AtS seconds after the
// start.
type FleetSecond struct {
	AtS          float64 `json:"at_s"`
	APIRequests  int     `json:"api_requests"`
	Throttled    int     `json:"throttled"`
	AppErrors    int     `json:"application_errors"`
	FailedLogins uint64  `json:"failed_logins"`
	Queries      int     `json:"queries"`
}

// report builds the fleet's figures. Seconds are counted from the
// emulator's origin (its per-second counts), which precedes the
// timeline's start; the first second holds the drill's own read of the
// secret, made before the processes start.
func (f *fleet) report(tl *timeline, rec *recorder, quota float64, interval time.Duration) *FleetReport {
	o := f.o
	r := &FleetReport{
		Processes: o.processes, Agents: o.agents, WorkersPerProcess: o.processWorkers,
		IntervalMS: ms(interval), Quota: quota,
	}
	r.QuotaNote = "set with -quota"
	if o.quota <= 0 {
		r.QuotaNote = fmt.Sprintf("the account's %d/s scaled by %d/10,000 processes: %d simulated processes stand for 10,000 against the real quota",
			rotatingmysqltest.GetSecretValueQuota, o.processes, o.processes)
	}
	origin := f.ft.sm.RateOrigin()
	second := func(t time.Time) int { return max(0, int(t.Sub(origin)/time.Second)) }
	end := second(time.Now())
	secs := make([]FleetSecond, end+1)
	for i := range secs {
		secs[i].AtS = origin.Add(time.Duration(i) * time.Second).Sub(f.start).Seconds()
	}
	if len(f.agents) > 0 {
		r.Counted = "GetSecretValue calls the emulated agents made (their reads of the store; the emulated agents are not throttled)"
		prev := 0
		for _, pt := range f.samples {
			if i := second(pt.at); i < len(secs) {
				secs[i].APIRequests += pt.agentReads - prev
			}
			prev = pt.agentReads
		}
	} else {
		r.Counted = "GetSecretValue requests the Secrets Manager emulator received, served and throttled"
		for i, rr := range f.ft.sm.RequestRates("GetSecretValue") {
			if i < len(secs) {
				secs[i].APIRequests, secs[i].Throttled = rr.Requests(), rr.Throttled
			}
		}
	}
	var prevLogins uint64
	for _, pt := range f.samples {
		if i := second(pt.at); i < len(secs) {
			secs[i].FailedLogins += pt.failedLogins - prevLogins
		}
		prevLogins = pt.failedLogins
	}
	samples, _ := rec.snapshot()
	for _, s := range samples {
		i := min(second(f.start.Add(s.at)), len(secs)-1)
		if s.failed {
			secs[i].AppErrors++
			r.AppErrors++
		} else {
			secs[i].Queries++
		}
	}
	r.Seconds = secs

	marks, _ := tl.snapshotMarks()
	rotStart := time.Time{}
	for _, m := range marks {
		if m.Step == stepCreateSecret && m.Rotation == 1 {
			rotStart = f.start.Add(m.At)
		}
	}
	for i, s := range secs {
		total := s.APIRequests
		r.Throttled += s.Throttled
		if total > r.PeakAPIRate {
			r.PeakAPIRate, r.PeakAt = total, s.AtS
		}
		// The second in which the rotation starts counts for the rotation.
		if !rotStart.IsZero() && i >= second(rotStart) {
			r.PeakRotationRate = max(r.PeakRotationRate, total)
			r.RotationCalls += total
		} else {
			r.PeakStartupRate = max(r.PeakStartupRate, total)
			r.StartupCalls += total
		}
	}
	rots := max(o.rotations, 1)
	r.CallsPerProcessPerRotation = float64(r.RotationCalls) / float64(o.processes) / float64(rots)
	if o.agents > 0 {
		r.CallsPerAgentPerRotation = float64(r.RotationCalls) / float64(o.agents) / float64(rots)
	}
	st := f.stats()
	r.FailedLogins, r.GaveUp, r.FetchErrors = st.AuthRefused, st.GaveUp, st.FetchErrors
	r.FailedLoginsPerRotation = float64(st.AuthRefused) / float64(rots)
	for i, rot := range f.rotations {
		var last time.Time
		n := 0
		for _, p := range f.procs {
			if i < len(p.switched) && !p.switched[i].IsZero() {
				n++
				if p.switched[i].After(last) {
					last = p.switched[i]
				}
			}
		}
		r.Switched = append(r.Switched, n)
		if n == len(f.procs) {
			r.SwitchedMS = append(r.SwitchedMS, ms(last.Sub(rot.setAt)))
		} else {
			r.SwitchedMS = append(r.SwitchedMS, -1)
			r.Problems = append(r.Problems, fmt.Sprintf("rotation %d: %d of %d processes never used the new password", i+1, len(f.procs)-n, len(f.procs)))
		}
	}
	return r
}

// writeFleetText prints the fleet's figures: a line per second, then the
// summary.
func (r *FleetReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "\nfleet: %d processes, %d workers each (every %v), %s\n", r.Processes, r.WorkersPerProcess,
		time.Duration(r.IntervalMS*float64(time.Millisecond)), fleetBehind(r))
	fmt.Fprintf(w, "  quota: %s GetSecretValue requests/s (%s)\n  API: %s\n\n", quotaText(r.Quota), r.QuotaNote, r.Counted)
	fmt.Fprintf(w, "  %7s  %9s  %9s  %18s  %22s  %8s\n", "second", wordAPICalls, "throttled", wordAppErrors, wordAbsorbed, wordQueries)
	for _, s := range r.Seconds {
		fmt.Fprintf(w, "  %7.1f  %9d  %9d  %18d  %22d  %8d\n", s.AtS, s.APIRequests, s.Throttled, s.AppErrors, s.FailedLogins, s.Queries)
	}
	fmt.Fprintf(w, "\n  peak rate of API calls:        %d/s at %.1fs (%.0f%% of the quota); starting: %d/s, rotation: %d/s\n",
		r.PeakAPIRate, r.PeakAt, 100*float64(r.PeakAPIRate)/r.Quota, r.PeakStartupRate, r.PeakRotationRate)
	fmt.Fprintf(w, "  throttled requests:            %d\n", r.Throttled)
	fmt.Fprintf(w, "  API calls at start:            %d (%.2f per process)\n", r.StartupCalls, float64(r.StartupCalls)/float64(r.Processes))
	fmt.Fprintf(w, "  API calls per process per rotation: %.2f", r.CallsPerProcessPerRotation)
	if r.Agents > 0 {
		fmt.Fprintf(w, " (%.1f per agent per rotation)", r.CallsPerAgentPerRotation)
	}
	fmt.Fprintf(w, "\n  failed logins absorbed per rotation: %.0f (%.2f per process)\n", r.FailedLoginsPerRotation, r.FailedLoginsPerRotation/float64(r.Processes))
	for i, d := range r.SwitchedMS {
		if d < 0 {
			fmt.Fprintf(w, "  rotation %d: %d of %d processes used the new password by the end\n", i+1, r.Switched[i], r.Processes)
			continue
		}
		fmt.Fprintf(w, "  rotation %d: every process on the new password %.2fs after setSecret\n", i+1, d/1000)
	}
	fmt.Fprintf(w, "  application errors:            %d (connects given up: %d, failed fetches: %d)\n", r.AppErrors, r.GaveUp, r.FetchErrors)
}

func fleetBehind(r *FleetReport) string {
	if r.Agents > 0 {
		return fmt.Sprintf("behind %d emulated agents", r.Agents)
	}
	return "each with its own Secrets Manager client"
}
