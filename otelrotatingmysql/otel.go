package otelrotatingmysql

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// ScopeName is the instrumentation scope of the meter.
const ScopeName = "github.com/rotatingmysql/rotatingmysql/otelrotatingmysql"

// Metric names.
const (
	MetricFetches     = "rotatingmysql.fetches"
	MetricLogins      = "rotatingmysql.logins"
	MetricSwitches    = "rotatingmysql.switches"
	MetricGiveUps     = "rotatingmysql.give_ups"
	MetricHoldsActive = "rotatingmysql.holds.active"
	MetricFetchAge    = "rotatingmysql.fetch.age"
	MetricLoginAge    = "rotatingmysql.login.age"
)

// Attribute keys.
const (
	AttrSecretID     = attribute.Key("rotatingmysql.secret.id")
	AttrStage        = attribute.Key("rotatingmysql.secret.stage")
	AttrVersionID    = attribute.Key("rotatingmysql.secret.version_id")
	AttrFetchResult  = attribute.Key("rotatingmysql.fetch.result")
	AttrOutcome      = attribute.Key("rotatingmysql.login.outcome")
	AttrErrorNumber  = attribute.Key("rotatingmysql.login.error_number")
	AttrHoldUntil    = attribute.Key("rotatingmysql.login.hold_until")
	AttrGiveUpReason = attribute.Key("rotatingmysql.give_up.reason")
	AttrRefusals     = attribute.Key("rotatingmysql.give_up.refusals")
	// AttrUser is the database user: on span events only, never on a
	// metric.
	AttrUser = attribute.Key("db.user")
)

// Option configures New.
type Option func(*config)

type config struct {
	mp  metric.MeterProvider
	now func() time.Time
}

// WithMeterProvider sets the MeterProvider (default: the global one,
// otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// Tracer is a rotatingmysql.Tracer that reports to OpenTelemetry. One
// Tracer may serve many connectors: its series are per secret. It is safe
// for concurrent use.
type Tracer struct {
	now                               func() time.Time
	fetches, logins, switches, giveUp metric.Int64Counter
	holds                             metric.Int64ObservableGauge
	fetchAge, loginAge                metric.Float64ObservableGauge
	reg                               metric.Registration

	mu      sync.Mutex
	secrets map[string]*secretState

	// loginAttrs caches the attribute sets of the logins counter: a login
	// is every Connect, and a set costs allocations to build.
	attrMu     sync.RWMutex
	loginAttrs map[loginKey]metric.AddOption
}

// loginKey is the attributes of a login data point.
type loginKey struct{ secret, stage, outcome string }

var _ rotatingmysql.Tracer = (*Tracer)(nil)

// secretState is what the gauges of one secret read.
type secretState struct {
	lastFetch, lastLogin time.Time
	holds                map[string]time.Time // version id → end of its hold
}

// New returns a Tracer whose instruments come from the MeterProvider.
// Close it to unregister its gauges.
func New(opts ...Option) (*Tracer, error) {
	cfg := config{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	m := cfg.mp.Meter(ScopeName)
	t := &Tracer{now: cfg.now, secrets: make(map[string]*secretState), loginAttrs: make(map[loginKey]metric.AddOption)}
	var err, e error
	t.fetches, e = m.Int64Counter(MetricFetches, metric.WithUnit("{fetch}"),
		metric.WithDescription("Fetches of the secret the connector asked for (a refresh after a refusal, the first fetch), by stage and result; one the cache shares with other callers counts for each."))
	err = joinFirst(err, e)
	t.logins, e = m.Int64Counter(MetricLogins, metric.WithUnit("{login}"),
		metric.WithDescription("Logins to the database, by the stage of the version used and outcome (accepted, refused, failed, locked, abandoned)."))
	err = joinFirst(err, e)
	t.switches, e = m.Int64Counter(MetricSwitches, metric.WithUnit("{switch}"),
		metric.WithDescription("Changes of the version new connections use, by the stage switched to."))
	err = joinFirst(err, e)
	t.giveUp, e = m.Int64Counter(MetricGiveUps, metric.WithUnit("{connect}"),
		metric.WithDescription("Connects that gave up (returned a ConnectError), by reason."))
	err = joinFirst(err, e)
	t.holds, e = m.Int64ObservableGauge(MetricHoldsActive, metric.WithUnit("{version}"),
		metric.WithDescription("Versions of the secret held back now after a refusal (1045) or a lock error."))
	err = joinFirst(err, e)
	t.fetchAge, e = m.Float64ObservableGauge(MetricFetchAge, metric.WithUnit("s"),
		metric.WithDescription("Seconds since the last successful fetch of the secret."))
	err = joinFirst(err, e)
	t.loginAge, e = m.Float64ObservableGauge(MetricLoginAge, metric.WithUnit("s"),
		metric.WithDescription("Seconds since the last accepted login with the secret."))
	err = joinFirst(err, e)
	if err != nil {
		return nil, fmt.Errorf("rotatingmysql: otel instruments: %w", err)
	}
	t.reg, err = m.RegisterCallback(t.observe, t.holds, t.fetchAge, t.loginAge)
	if err != nil {
		return nil, fmt.Errorf("rotatingmysql: otel callback: %w", err)
	}
	return t, nil
}

func joinFirst(err, e error) error {
	if err != nil {
		return err
	}
	return e
}

// Close unregisters the Tracer's gauges. The counters stay with the
// MeterProvider.
func (t *Tracer) Close() error { return t.reg.Unregister() }

// state returns the state of the secret id; t.mu is held.
func (t *Tracer) state(id string) *secretState {
	s := t.secrets[id]
	if s == nil {
		s = &secretState{holds: make(map[string]time.Time)}
		t.secrets[id] = s
	}
	return s
}

// observe reports the gauges.
func (t *Tracer) observe(_ context.Context, o metric.Observer) error {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range t.secrets {
		attrs := metric.WithAttributes(AttrSecretID.String(id))
		held := 0
		for v, until := range s.holds {
			if now.Before(until) {
				held++
			} else {
				delete(s.holds, v)
			}
		}
		o.ObserveInt64(t.holds, int64(held), attrs)
		if !s.lastFetch.IsZero() {
			o.ObserveFloat64(t.fetchAge, now.Sub(s.lastFetch).Seconds(), attrs)
		}
		if !s.lastLogin.IsZero() {
			o.ObserveFloat64(t.loginAge, now.Sub(s.lastLogin).Seconds(), attrs)
		}
	}
	return nil
}

// stage is the stage attribute's value: "none" for a version without a
// label.
func stage(s credsource.Stage) string {
	if s == "" {
		return "none"
	}
	return string(s)
}

// TraceFetchStart returns ctx: a fetch is reported when it ends.
func (t *Tracer) TraceFetchStart(ctx context.Context, _ rotatingmysql.FetchStartData) context.Context {
	return ctx
}

// TraceFetchEnd counts the fetch, notes a success for the fetch.age gauge
// and adds a rotatingmysql.fetch event to the span on ctx.
func (t *Tracer) TraceFetchEnd(ctx context.Context, d rotatingmysql.FetchEndData) {
	result := "ok"
	switch {
	case d.NotFound:
		result = "not_found"
	case d.Err != nil:
		result = "error"
	}
	if result == "ok" {
		t.mu.Lock()
		t.state(d.SecretID).lastFetch = t.now()
		t.mu.Unlock()
	}
	if d.Background {
		// Fetched outside the Connect: counted by whoever fetched it.
		return
	}
	t.fetches.Add(ctx, 1, metric.WithAttributes(AttrSecretID.String(d.SecretID), AttrStage.String(stage(d.Stage)), AttrFetchResult.String(result)))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		attrs := []attribute.KeyValue{AttrSecretID.String(d.SecretID), AttrStage.String(stage(d.Stage)), AttrFetchResult.String(result)}
		if d.VersionID != "" {
			attrs = append(attrs, AttrVersionID.String(d.VersionID))
		}
		if d.Err != nil {
			attrs = append(attrs, attribute.String("error.message", d.Err.Error()))
		}
		span.AddEvent("rotatingmysql.fetch", trace.WithAttributes(attrs...))
	}
}

// TraceLogin counts the login, tracks the holds and the login.age gauge,
// and adds a rotatingmysql.login event to the span on ctx, unless the
// login was an ordinary one (accepted with AWSCURRENT).
func (t *Tracer) TraceLogin(ctx context.Context, d rotatingmysql.LoginData) {
	t.logins.Add(ctx, 1, t.loginAttr(loginKey{d.SecretID, stage(d.Stage), string(d.Outcome)}))
	switch {
	case d.Outcome == rotatingmysql.LoginAccepted:
		t.mu.Lock()
		s := t.state(d.SecretID)
		s.lastLogin = t.now()
		delete(s.holds, d.VersionID)
		t.mu.Unlock()
	case !d.HoldUntil.IsZero():
		t.mu.Lock()
		t.state(d.SecretID).holds[d.VersionID] = d.HoldUntil
		t.mu.Unlock()
	}
	if d.Outcome == rotatingmysql.LoginAccepted && d.Stage == credsource.Current {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		attrs := []attribute.KeyValue{AttrSecretID.String(d.SecretID), AttrStage.String(stage(d.Stage)),
			AttrVersionID.String(d.VersionID), AttrOutcome.String(string(d.Outcome)), AttrUser.String(d.Username)}
		if d.Number != 0 {
			attrs = append(attrs, AttrErrorNumber.Int(int(d.Number)))
		}
		if !d.HoldUntil.IsZero() {
			attrs = append(attrs, AttrHoldUntil.String(d.HoldUntil.UTC().Format(time.RFC3339Nano)))
		}
		span.AddEvent("rotatingmysql.login", trace.WithAttributes(attrs...))
	}
}

// loginAttr returns the attributes of the logins counter for k.
func (t *Tracer) loginAttr(k loginKey) metric.AddOption {
	t.attrMu.RLock()
	o, ok := t.loginAttrs[k]
	t.attrMu.RUnlock()
	if ok {
		return o
	}
	o = metric.WithAttributeSet(attribute.NewSet(AttrSecretID.String(k.secret), AttrStage.String(k.stage), AttrOutcome.String(k.outcome)))
	t.attrMu.Lock()
	t.loginAttrs[k] = o
	t.attrMu.Unlock()
	return o
}

// TraceSwitch counts the switch (not the first login) and adds a
// rotatingmysql.switch event to the span on ctx.
func (t *Tracer) TraceSwitch(ctx context.Context, d rotatingmysql.SwitchData) {
	if d.Initial {
		return
	}
	t.switches.Add(ctx, 1, metric.WithAttributes(AttrSecretID.String(d.SecretID), AttrStage.String(stage(d.Stage))))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("rotatingmysql.switch", trace.WithAttributes(AttrSecretID.String(d.SecretID),
			AttrStage.String(stage(d.Stage)), AttrVersionID.String(d.VersionID), AttrUser.String(d.Username)))
	}
}

// TraceGiveUp counts the give-up and adds a rotatingmysql.give_up event to
// the span on ctx.
func (t *Tracer) TraceGiveUp(ctx context.Context, d rotatingmysql.GiveUpData) {
	t.giveUp.Add(ctx, 1, metric.WithAttributes(AttrSecretID.String(d.SecretID), AttrGiveUpReason.String(string(d.Reason))))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("rotatingmysql.give_up", trace.WithAttributes(AttrSecretID.String(d.SecretID),
			AttrGiveUpReason.String(string(d.Reason)), AttrRefusals.Int(d.Refusals)))
	}
}
