package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/refreshrules"
)

// options are the command line's settings.
type options struct {
	workers      int
	plainWorkers int
	duration     time.Duration
	window       time.Duration
	interval     time.Duration
	strategy     string
	rotations    int
	source       string
	mysqlRoot    string
	secret       string
	aws          bool
	host         string
	timeout      time.Duration
	poll         time.Duration
	svg          string
	json         bool
	verbose      bool
	quiet        bool
	otel         bool

	// The fleet drill (-processes).
	processes      int
	agents         int
	quota          float64
	processWorkers int
	ttl            time.Duration
	intervalSet    bool

	// The virtual-time fleet drill (-processes N -virtual).
	virtual            bool
	startSpread        time.Duration
	startSpreadSet     bool
	apiLatency         time.Duration
	loginLatency       time.Duration
	queryLatency       time.Duration
	latencySigma       float64
	sdkThrottleRetries bool
	sdkThrottleBackoff time.Duration
	failureJitter      float64
	failureSteps       int
	sharedBackoff      bool
	outageAt           time.Duration
	outageFor          time.Duration
	seed               uint64

	// Replica regions (-replica-regions, -region-outage).
	replicaRegions []string
	regionOutage   bool

	logger *slog.Logger
	// tracer is the connectors' tracer: otelrotatingmysql's with -otel,
	// else nil.
	tracer rotatingmysql.Tracer
	// awsConfig replaces config.LoadDefaultConfig in -aws mode (tests
	// point it at the emulator).
	awsConfig *aws.Config
}

const usageText = `rotation-drill rotates a MySQL password the way AWS Secrets Manager's managed
rotation does, under load, and shows which driver's queries survive it.

  make drill                       embedded server, emulated Secrets Manager (builds bin/rotation-drill,
                                   draws bin/rotation-drill.svg)
  bin/rotation-drill -svg t.svg    the same, drawn to t.svg
  bin/rotation-drill -mysql-root 'root@tcp(127.0.0.1:3306)/'
                                   a real MySQL or MariaDB server, emulated Secrets Manager
  bin/rotation-drill -aws -secret ARN
                                   a real staging secret, rotated by its own rotation function

Exit status: 0 when the rotatingmysql workers saw no error, 1 when they did or
the rotation failed, 2 when the drill could not run.

Options:
`

// parseOptions parses args. Errors are printed to stderr by the flag
// package or here.
func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("rotation-drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.workers, "workers", 4, "workers per driver; half of them (rounded up) open a new connection for every query")
	o.plainWorkers = -1 // not given
	fs.Func("plain-workers", "`N` workers on the plain mysql driver (default: as many as -workers; none with -aws, see README)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a whole number, 0 or more")
		}
		o.plainWorkers = n
		return nil
	})
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of the drill; the first rotation starts after a quarter of it, and a quarter at least follows the last")
	fs.DurationVar(&o.window, "window", 3*time.Second, "pause between testSecret and finishSecret: the database has the new password, AWSCURRENT the old one")
	fs.DurationVar(&o.interval, "interval", 10*time.Millisecond, "pause between two queries of a worker")
	fs.StringVar(&o.strategy, "strategy", "single", "rotation strategy: single (MySQLSingleUser) or multi (MySQLMultiUser, alternating users)")
	fs.IntVar(&o.rotations, "rotations", 1, "rotations to run back to back")
	fs.StringVar(&o.source, "source", "api", "where rotatingmysql reads the secret: api (Secrets Manager API) or agent (the Secrets Manager Agent, emulated)")
	fs.StringVar(&o.mysqlRoot, "mysql-root", "", "go-sql-driver/mysql DSN of an account that may create users and databases on a real server, e.g. root@tcp(127.0.0.1:3306)/")
	fs.StringVar(&o.secret, "secret", "", "with -aws: ARN of a staging secret whose rotation is configured")
	fs.BoolVar(&o.aws, "aws", false, "use the real AWS Secrets Manager (default credentials chain) and the secret's own rotation function")
	fs.StringVar(&o.host, "host", "", "with -aws: database host[:port] when the secret has none (RDS-managed secrets)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "with -aws: how long a rotation may take before the drill calls it stuck")
	fs.DurationVar(&o.poll, "poll", time.Second, "with -aws: how often DescribeSecret is called to follow the rotation")
	fs.StringVar(&o.svg, "svg", "", "draw the drill to this SVG `file`: per driver, queries and application errors per second, the steps named, the totals in the title (make drill: bin/rotation-drill.svg; '' for none)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.verbose, "v", false, "log rotatingmysql's events (secret fetched, 1045 absorbed, AWSPENDING used) to stderr")
	fs.BoolVar(&o.quiet, "q", false, "no live progress")
	fs.BoolVar(&o.otel, "otel", false, "at the end, print the OpenTelemetry metrics rotatingmysql exported (package otelrotatingmysql, read in the process: no collector needed); with -json, to stderr")
	fs.IntVar(&o.processes, "processes", 0, "fleet drill: simulate `N` processes, each with its own connector, pools and workers (nothing shared between them)")
	fs.IntVar(&o.agents, "agents", 0, "fleet drill: put the processes behind `M` emulated Secrets Manager Agents (one per host, its cache shared by its processes)")
	fs.Float64Var(&o.quota, "quota", 0, "fleet drill: the emulator's GetSecretValue quota in requests/s (default: 10,000 x N/10,000, so that N processes stand for 10,000 against the real quota; with -virtual the real 10,000)")
	fs.IntVar(&o.processWorkers, "process-workers", 2, "fleet drill: workers per process; half of them (rounded up) open a new connection for every query")
	fs.BoolVar(&o.virtual, "virtual", false, "fleet drill in virtual time: N simulated processes (the library's ledger, connect loop and cache rules; the database, the network and Secrets Manager modelled), no server started; 100,000 processes in minutes on one core")
	fs.DurationVar(&o.startSpread, "start-spread", 0, "with -virtual: the processes start at random over this time (default: one -interval, a deploy: each process at its own phase); the rotation comes a quarter of -duration after it")
	fs.DurationVar(&o.apiLatency, "api-latency", 20*time.Millisecond, "with -virtual: median GetSecretValue round trip")
	fs.DurationVar(&o.loginLatency, "login-latency", 10*time.Millisecond, "with -virtual: median MySQL login round trip")
	fs.DurationVar(&o.queryLatency, "query-latency", 2*time.Millisecond, "with -virtual: median query round trip")
	fs.Float64Var(&o.latencySigma, "latency-sigma", 0, "with -virtual: latencies log-normal with this σ around their medians (1: the 99th percentile at 10 times the median, as a loaded machine); 0: uniform over [0.5, 1.5] times the median")
	fs.BoolVar(&o.sdkThrottleRetries, "sdk-throttle-retries", true, "with -virtual: the SDK's retryer retries ThrottlingException (3 attempts, as the library's client today); false: it returns it at once (the cache and the ledger's rounds retry)")
	fs.DurationVar(&o.sdkThrottleBackoff, "sdk-throttle-backoff", 2*time.Second, "with -virtual: the SDK retryer's base delay after ThrottlingException: retry i waits a random time in [0, base x 2^i) (the SDK's 1s, doubled by rotatingmysql's SM client: 2s)")
	fs.Float64Var(&o.failureJitter, "failure-jitter", refreshrules.DefaultFailureJitter, "with -virtual: spread of the cache's failure backoff (1, 2, 4 s), each step drawn from [1-J, 1] times itself, at least half an interval (the library's setting by default; 0: exact)")
	fs.IntVar(&o.failureSteps, "failure-steps", 2, "with -virtual: the cache's failure backoff doubles this many times (2: 1, 2, 4 s)")
	fs.BoolVar(&o.sharedBackoff, "shared-backoff", true, "with -virtual: a failed fetch of one stage (throttled) holds the forced refreshes of every stage of the source, as the library's cache does; false: of its own stage only (the cache before)")
	fs.DurationVar(&o.outageAt, "outage-at", 0, "with -virtual and -outage-for: when Secrets Manager goes down (503), since the start")
	fs.DurationVar(&o.outageFor, "outage-for", 0, "with -virtual: how long Secrets Manager answers 503 from -outage-at")
	fs.Uint64Var(&o.seed, "seed", 1, "with -virtual: the random seed (same seed, same run)")
	fs.DurationVar(&o.ttl, "ttl", 0, "fleet drill: the processes' cache TTL (default: rotatingmysql's, 15m)")
	fs.Func("replica-regions", "comma-separated `regions` the secret is replicated to (emulated: one emulator per region, the secret's own in us-east-1); rotatingmysql gets replicaRegions= and the report counts the fetches each region served", func(v string) error {
		o.replicaRegions = nil
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r == "" {
				return errors.New("want regions such as us-west-2,eu-west-1")
			}
			o.replicaRegions = append(o.replicaRegions, r)
		}
		return nil
	})
	fs.BoolVar(&o.regionOutage, "region-outage", false, "with -replica-regions: the secret's own region answers every GetSecretValue with 503 from the start of the run to its end")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.intervalSet = set["interval"]
	o.startSpreadSet = set["start-spread"]
	if err := o.check(set, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "rotation-drill: %v\n", err)
		return nil, err
	}
	if o.plainWorkers < 0 {
		o.plainWorkers = o.workers
		if o.aws || o.processes > 0 {
			o.plainWorkers = 0
		}
	}
	o.logger = slog.New(slog.DiscardHandler)
	if o.verbose {
		o.logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	return o, nil
}

// check rejects settings that contradict each other.
func (o *options) check(set map[string]bool, rest []string) error {
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected argument %q (options start with -)", rest[0])
	case o.workers < 1:
		return fmt.Errorf("-workers must be at least 1, got %d", o.workers)
	case o.rotations < 0 || o.rotations < 1 && !o.virtual:
		return fmt.Errorf("-rotations must be at least 1 (0 with -virtual: the deploy and TTL refreshes alone), got %d", o.rotations)
	case o.duration <= 0 || o.window < 0 || o.interval < 0:
		return errors.New("-duration must be positive, -window and -interval not negative")
	case o.strategy != "single" && o.strategy != "multi":
		return fmt.Errorf("-strategy %q: want single or multi", o.strategy)
	case o.source != "api" && o.source != "agent":
		return fmt.Errorf("-source %q: want api or agent", o.source)
	case o.aws != (o.secret != ""):
		return errors.New("-aws and -secret ARN go together: the drill rotates a real secret only when both are given")
	case o.processes < 0 || o.agents < 0 || o.quota < 0:
		return errors.New("-processes, -agents and -quota must not be negative")
	case o.processes == 0 && (set["agents"] || set["quota"] || set["process-workers"] || set["ttl"]):
		return errors.New("-agents, -quota, -process-workers and -ttl apply only to the fleet drill (-processes N)")
	case o.agents > o.processes:
		return fmt.Errorf("-agents %d: more agents than processes (%d)", o.agents, o.processes)
	case o.processes > 0 && o.processWorkers < 1:
		return fmt.Errorf("-process-workers must be at least 1, got %d", o.processWorkers)
	case o.regionOutage && len(o.replicaRegions) == 0:
		return errors.New("-region-outage needs -replica-regions: with no replica, an outage of the secret's region is an outage")
	case len(o.replicaRegions) > 0 && (o.aws || o.processes > 0 || o.source != "api"):
		return errors.New("-replica-regions applies to the emulated drill with -source api (not -aws, -processes or -source agent)")
	}
	virtualOnly := []string{"start-spread", "api-latency", "login-latency", "query-latency", "latency-sigma", "sdk-throttle-retries", "sdk-throttle-backoff", "failure-jitter", "failure-steps", "shared-backoff", "outage-at", "outage-for", "seed"}
	switch {
	case o.virtual && o.processes == 0:
		return errors.New("-virtual needs -processes N")
	case o.virtual && (o.mysqlRoot != "" || set["otel"] || set["v"] || set["replica-regions"]):
		return errors.New("-virtual: no server, no connector: not with -mysql-root, -otel, -v or -replica-regions")
	case o.failureJitter < 0 || o.failureJitter > 1:
		return fmt.Errorf("-failure-jitter %g: want 0 to 1", o.failureJitter)
	case o.startSpread < 0 || o.apiLatency < 0 || o.loginLatency < 0 || o.queryLatency < 0 || o.latencySigma < 0 || o.outageAt < 0 || o.outageFor < 0:
		return errors.New("-start-spread, the latencies and the outage must not be negative")
	}
	if !o.virtual {
		for _, name := range virtualOnly {
			if set[name] {
				return fmt.Errorf("-%s applies only with -virtual", name)
			}
		}
	}
	if o.processes > 0 {
		for _, name := range []string{"aws", "source", "workers", "plain-workers"} {
			if set[name] {
				return fmt.Errorf("-%s: not with -processes (the fleet's processes use the API, or -agents M; -process-workers sets their workers)", name)
			}
		}
	}
	if o.aws {
		var bad []string
		for _, name := range []string{"mysql-root", "window", "strategy", "source"} {
			if set[name] {
				bad = append(bad, "-"+name)
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s: not with -aws, where the secret's rotation function decides the steps and the window", strings.Join(bad, ", "))
		}
	} else {
		for _, name := range []string{"host", "timeout", "poll"} {
			if set[name] {
				return fmt.Errorf("-%s applies only with -aws", name)
			}
		}
	}
	return nil
}
