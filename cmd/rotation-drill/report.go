package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
)

// bucket is the width of the timeline's bars.
const bucket = 100 * time.Millisecond

// Report is what a drill measured. -json prints it as is.
type Report struct {
	Target       string `json:"target"`
	SecretID     string `json:"secret_id"`
	Strategy     string `json:"strategy"`
	Source       string `json:"source"`
	Workers      int    `json:"workers"`
	PlainWorkers int    `json:"plain_workers"`
	// FreshWorkers of each driver open a new connection for every query.
	FreshWorkers      int     `json:"fresh_workers"`
	PlainFreshWorkers int     `json:"plain_fresh_workers"`
	Rotations         int     `json:"rotations"`
	WindowMS          float64 `json:"window_ms"`
	ElapsedMS         float64 `json:"elapsed_ms"`
	// ShutdownMS is when the drill began stopping its workers: the
	// picture ends at the last full bucket before it (the queries cut
	// short by the shutdown are the drill's, not a driver's).
	ShutdownMS float64 `json:"shutdown_ms"`
	// APICallsCounted says what the API call columns count.
	APICallsCounted string `json:"api_calls_counted"`
	// Steps has one row per step and driver, steps in the order they came,
	// each step's figures summed over the rotations.
	Steps   []StepRow     `json:"steps"`
	Drivers []DriverTotal `json:"drivers"`
	Marks   []Mark        `json:"marks"`
	// Timeline holds the successful queries and the errors per bucket.
	Timeline Timeline `json:"timeline"`
	// Fleet holds the fleet drill's figures (-processes).
	Fleet *FleetReport `json:"fleet,omitempty"`
	// Virtual holds the virtual-time fleet drill's own figures (-virtual).
	Virtual *VirtualReport `json:"virtual,omitempty"`
	// Regions counts, per region, the GetSecretValue requests received and
	// answered (-replica-regions): which region served the fetches.
	Regions  []RegionRow `json:"regions,omitempty"`
	Pass     bool        `json:"pass"`
	Problems []string    `json:"problems,omitempty"`
	Verdict  string      `json:"verdict"`
}

// StepRow is one driver's figures during one step. Latencies are those of
// successful queries, the dial included for fresh connections.
// FailedLoginsAbsorbed and APICalls are null for the plain driver: it
// absorbs nothing and read the secret once, before the start.
type StepRow struct {
	Step                 string  `json:"step"`
	Driver               string  `json:"driver"`
	Seconds              float64 `json:"seconds"`
	Queries              int     `json:"queries"`
	Errors               int     `json:"errors"`
	P50MS                float64 `json:"p50_ms"`
	P99MS                float64 `json:"p99_ms"`
	FailedLoginsAbsorbed *uint64 `json:"failed_logins_absorbed"`
	APICalls             *int    `json:"api_calls"`
}

// DriverTotal sums a driver's figures over the drill.
type DriverTotal struct {
	Driver  string  `json:"driver"`
	Queries int     `json:"queries"`
	Errors  int     `json:"errors"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
	// ErrorsInWindow counts errors from setSecret to the end of
	// finishSecret (-aws: while AWSPENDING was pending); ErrorsAfter
	// counts those after the last rotation's end.
	ErrorsInWindow int            `json:"errors_in_window"`
	ErrorsAfter    int            `json:"errors_after"`
	ErrorKinds     map[string]int `json:"error_kinds,omitempty"`
	// rotatingmysql only (Connector.Stats).
	FailedLoginsAbsorbed *uint64 `json:"failed_logins_absorbed,omitempty"`
	Recovered            *uint64 `json:"recovered,omitempty"`
	PendingUsed          *uint64 `json:"pending_used,omitempty"`
	APICalls             *int    `json:"api_calls,omitempty"`
}

// Mark is the start of a step.
type Mark struct {
	Step     string  `json:"step"`
	Rotation int     `json:"rotation"`
	AtMS     float64 `json:"at_ms"`
}

// Timeline is the drill in buckets of BucketMS.
type Timeline struct {
	BucketMS float64  `json:"bucket_ms"`
	Series   []Series `json:"series"`
}

// Series is one driver's successful queries and errors per bucket.
type Series struct {
	Driver  string `json:"driver"`
	Queries []int  `json:"queries"`
	Errors  []int  `json:"errors"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// buildReport turns what the drill recorded into the report.
func buildReport(o *options, t *target, tl *timeline, final counters, elapsed time.Duration, stats rotatingmysql.Stats, recs ...*recorder) *Report {
	marks, names := tl.snapshotMarks()
	rep := &Report{
		Target: t.describe, SecretID: t.secretID, Strategy: o.strategy, Source: o.source,
		Workers: o.workers, PlainWorkers: o.plainWorkers,
		FreshWorkers: (o.workers + 1) / 2, PlainFreshWorkers: (o.plainWorkers + 1) / 2,
		Rotations: o.rotations, WindowMS: ms(o.window), ElapsedMS: ms(elapsed), ShutdownMS: ms(tl.shutdownAt()),
		APICallsCounted: t.apiCallsFrom, Pass: true,
		Timeline: Timeline{BucketMS: ms(bucket)},
	}
	if o.aws {
		rep.Strategy, rep.Source, rep.WindowMS = "the secret's rotation function", "api", 0
	}
	for _, m := range marks {
		rep.Marks = append(rep.Marks, Mark{Step: m.Step, Rotation: m.Rotation, AtMS: ms(m.At)})
	}

	// Seconds, failed logins and API calls per step, from the marks.
	seconds := make([]time.Duration, len(names))
	absorbed := make([]uint64, len(names))
	calls := make([]int, len(names))
	for i, m := range marks {
		endAt, endC := elapsed, final
		if i+1 < len(marks) {
			endAt, endC = marks[i+1].At, marks[i+1].counters
		}
		idx := slices.Index(names, m.Step)
		seconds[idx] += endAt - m.At
		absorbed[idx] += endC.AuthRefused - m.counters.AuthRefused
		calls[idx] += endC.APICalls - m.counters.APICalls
	}

	// A last partial bucket shorter than half a bucket joins the one
	// before, so that the timeline does not end on a false drop.
	nBuckets := max(1, int((elapsed+bucket/2)/bucket))
	perDriver := map[string][][]time.Duration{}
	totals := map[string]*DriverTotal{}
	for _, r := range recs {
		samples, kinds := r.snapshot()
		byStep := make([][]time.Duration, len(names))
		errs := make([]int, len(names))
		tot := &DriverTotal{Driver: r.driver, ErrorKinds: kinds}
		series := Series{Driver: r.driver, Queries: make([]int, nBuckets), Errors: make([]int, nBuckets)}
		var all []time.Duration
		for _, s := range samples {
			b := min(int(s.at/bucket), nBuckets-1)
			tot.Queries++
			if s.failed {
				errs[s.step]++
				tot.Errors++
				series.Errors[b]++
				switch name := names[s.step]; {
				case brokenSteps[name]:
					tot.ErrorsInWindow++
				case name == stepAfter:
					tot.ErrorsAfter++
				}
				continue
			}
			series.Queries[b]++
			byStep[s.step] = append(byStep[s.step], s.lat)
			all = append(all, s.lat)
		}
		tot.P50MS, tot.P99MS = percentiles(all)
		perDriver[r.driver] = byStep
		totals[r.driver] = tot
		rep.Timeline.Series = append(rep.Timeline.Series, series)
		for i, name := range names {
			row := StepRow{Step: name, Driver: r.driver, Seconds: seconds[i].Seconds(), Queries: len(byStep[i]) + errs[i], Errors: errs[i]}
			row.P50MS, row.P99MS = percentiles(byStep[i])
			if r.driver == driverRotating {
				row.FailedLoginsAbsorbed, row.APICalls = &absorbed[i], &calls[i]
			}
			rep.Steps = append(rep.Steps, row)
		}
	}
	// Rows grouped by step, in the order the steps came.
	sort.SliceStable(rep.Steps, func(a, b int) bool {
		return slices.Index(names, rep.Steps[a].Step) < slices.Index(names, rep.Steps[b].Step)
	})

	rt := totals[driverRotating]
	rt.FailedLoginsAbsorbed, rt.Recovered, rt.PendingUsed, rt.APICalls = &stats.AuthRefused, &stats.Recovered, &stats.PendingUsed, &final.APICalls
	rep.Drivers = append(rep.Drivers, *rt)
	if o.plainWorkers > 0 {
		rep.Drivers = append(rep.Drivers, *totals[driverPlain])
	} else {
		rep.Steps = slices.DeleteFunc(rep.Steps, func(r StepRow) bool { return r.Driver == driverPlain })
		rep.Timeline.Series = rep.Timeline.Series[:1]
	}
	if rt.Errors > 0 {
		rep.fail(fmt.Sprintf("the rotatingmysql workers saw %s", plural(rt.Errors, wordAppErrors)))
	}
	rep.Verdict = rep.verdict()
	return rep
}

// fail records a problem; the drill then exits with status 1.
// failRun records how the run itself ended: interrupted, or a rotation
// that failed.
func (r *Report) failRun(interrupted bool, rotErr error) {
	switch {
	case interrupted:
		r.fail("interrupted before the end of the drill")
	case rotErr != nil:
		r.fail(rotErr.Error())
	}
}

func (r *Report) fail(problem string) {
	r.Pass = false
	r.Problems = append(r.Problems, problem)
	r.Verdict = r.verdict()
}

func (r *Report) driver(name string) *DriverTotal {
	for i := range r.Drivers {
		if r.Drivers[i].Driver == name {
			return &r.Drivers[i]
		}
	}
	return nil
}

func (r *Report) verdict() string {
	var b strings.Builder
	if r.Pass {
		b.WriteString("PASS: ")
	} else {
		b.WriteString("FAIL: " + strings.Join(r.Problems, "; ") + ". ")
	}
	rt := r.driver(driverRotating)
	if rt == nil {
		return b.String()
	}
	fmt.Fprintf(&b, "rotatingmysql: %s (%s with AWSPENDING).", totalsText(*rt), plural(deref(rt.PendingUsed), "logins"))
	if p := r.driver(driverPlain); p != nil {
		fmt.Fprintf(&b, " mysql (password read once): %s (%s during the window, %s after it)", totalsText(*p), thousands(p.ErrorsInWindow), thousands(p.ErrorsAfter))
		if p.Errors == 0 && r.Strategy == "multi" {
			b.WriteString(": with alternating users the previous user keeps its password until the next rotation")
		}
		b.WriteString(".")
	}
	return b.String()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// percentiles returns the nearest-rank p50 and p99 of lats, in ms.
func percentiles(lats []time.Duration) (p50, p99 float64) {
	if len(lats) == 0 {
		return 0, 0
	}
	s := slices.Clone(lats)
	slices.Sort(s)
	at := func(q float64) float64 { return ms(s[int(q*float64(len(s)-1)+0.5)]) }
	return at(0.50), at(0.99)
}

// writeText prints the report as a table.
func (r *Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "\nrotation-drill: %s\n  %d rotation(s), %s; rotatingmysql reads the secret through the %s\n", r.Target, r.Rotations, strategyText(r.Strategy), sourceText[r.Source])
	fmt.Fprintf(w, "  workers: %d rotatingmysql (%d on fresh connections)", r.Workers, r.FreshWorkers)
	if r.PlainWorkers > 0 {
		fmt.Fprintf(w, ", %d mysql with the password read once (%d on fresh connections)", r.PlainWorkers, r.PlainFreshWorkers)
	}
	fmt.Fprintf(w, "; %.1fs in all", r.ElapsedMS/1000)
	if r.WindowMS > 0 {
		fmt.Fprintf(w, ", window %v", time.Duration(r.WindowMS*float64(time.Millisecond)))
	}
	fmt.Fprintf(w, "\n  latency: successful queries, dial included on fresh connections; API calls: %s\n\n", r.APICallsCounted)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "step\tseconds\tdriver\t%s\t%s\tp50\tp99\t%s\t%s\t\n", wordQueries, wordAppErrors, wordAbsorbed, wordAPICalls)
	prev := ""
	for _, s := range r.Steps {
		step, secs := "", ""
		if s.Step != prev {
			step, secs = s.Step, seconds(s.Seconds)
			prev = s.Step
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", step, secs, s.Driver, s.Queries, s.Errors,
			latency(s.P50MS, s.Queries-s.Errors), latency(s.P99MS, s.Queries-s.Errors), orDash(s.FailedLoginsAbsorbed), orDash(s.APICalls))
	}
	for i, d := range r.Drivers {
		step := ""
		if i == 0 {
			step = "all"
		}
		secs := ""
		if i == 0 {
			secs = seconds(r.ElapsedMS / 1000)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", step, secs, d.Driver, d.Queries, d.Errors,
			latency(d.P50MS, d.Queries-d.Errors), latency(d.P99MS, d.Queries-d.Errors), orDash(d.FailedLoginsAbsorbed), orDash(d.APICalls))
	}
	tw.Flush()

	for _, d := range r.Drivers {
		if len(d.ErrorKinds) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s of %s:\n", wordAppErrors, d.Driver)
		kinds := slices.Collect(maps.Keys(d.ErrorKinds))
		sort.Slice(kinds, func(a, b int) bool { return d.ErrorKinds[kinds[a]] > d.ErrorKinds[kinds[b]] })
		for _, k := range kinds {
			fmt.Fprintf(w, "  %6d  %s\n", d.ErrorKinds[k], k)
		}
	}
	if r.Fleet != nil {
		r.Fleet.writeText(w)
	}
	if r.Virtual != nil {
		r.Virtual.writeText(w, r.Fleet)
	}
	if len(r.Regions) > 0 {
		fmt.Fprintf(w, "\nSecrets Manager regions (GetSecretValue of rotatingmysql and the drill's own first read):\n")
		for _, g := range r.Regions {
			role := "replica"
			if g.Primary {
				role = "the secret's own region"
			}
			if g.Down {
				role += ", down (503) during the run"
			}
			fmt.Fprintf(w, "  %-16s %6d requests, %6d answered (%s)\n", g.Region, g.Requests, g.Answered, role)
		}
	}
	fmt.Fprintf(w, "\n%s\n", r.Verdict)
}

var sourceText = map[string]string{"api": "Secrets Manager API", "agent": "Secrets Manager Agent"}

func strategyText(s string) string {
	switch s {
	case "single":
		return "MySQLSingleUser steps"
	case "multi":
		return "MySQLMultiUser steps (alternating users)"
	}
	return s
}

// seconds prints a step's length: milliseconds for the quick steps.
func seconds(s float64) string {
	if s < 0.1 {
		return fmt.Sprintf("%.0fms", s*1000)
	}
	return fmt.Sprintf("%.2fs", s)
}

func latency(msec float64, n int) string {
	switch {
	case n == 0:
		return "-"
	case msec >= 1000:
		return fmt.Sprintf("%.2fs", msec/1000)
	case msec >= 10:
		return fmt.Sprintf("%.0fms", msec)
	}
	return fmt.Sprintf("%.2fms", msec)
}

func orDash[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// RegionRow is one region's GetSecretValue requests and answers.
type RegionRow struct {
	Region   string `json:"region"`
	Primary  bool   `json:"primary"`
	Down     bool   `json:"down"`
	Requests int    `json:"requests"`
	Answered int    `json:"answered"`
}

// addRegions puts the regions' counts in the report; with the secret's own
// region down, a run no replica served fails.
func (r *Report) addRegions(rows []RegionRow) {
	r.Regions = rows
	down, replicas := false, 0
	for _, g := range rows {
		down = down || g.Down
		if !g.Primary {
			replicas += g.Answered
		}
	}
	if down && replicas == 0 {
		r.fail("the secret's own region was down and no replica answered a fetch")
	}
}
