package rotatingmysql

import (
	"context"
	"time"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/ledger"
)

// Tracer receives what a Connector does, as it happens: the fetches of
// the secret, every login and its outcome (the 1045s the connector
// absorbs included), the switches of the version new connections use,
// and the Connects that give up. Set it with Config.Tracer or WithTracer;
// package otelrotatingmysql (its own module) implements it with
// OpenTelemetry spans and metrics.
//
// The methods are called with the Connect's context, so a span already on
// it (otelsql's connect span) can be annotated; TraceFetchStart may return
// a derived context, which the matching TraceFetchEnd receives. They are
// called from the goroutine making the Connect, concurrently across
// Connects, and must return quickly. The data carries no password or
// token; the user name is there for span attributes, not for metric
// labels (it multiplies series, and some consider it sensitive).
//
// Embed NopTracer in an implementation so that methods added to the
// interface later have a default.
type Tracer interface {
	// TraceFetchStart is called when the connector asks the credential
	// source for a stage (a refresh after a refusal, the first fetch).
	TraceFetchStart(ctx context.Context, data FetchStartData) context.Context
	// TraceFetchEnd is called with its answer; with data.Background, for
	// a version fetched in the background (a TTL refresh, another
	// connector's fetch) when a Connect first uses it, without a
	// TraceFetchStart before.
	TraceFetchEnd(ctx context.Context, data FetchEndData)
	// TraceLogin is called after every login the connector makes.
	TraceLogin(ctx context.Context, data LoginData)
	// TraceSwitch is called when another version starts serving new
	// connections (the first login included, with data.Initial).
	TraceSwitch(ctx context.Context, data SwitchData)
	// TraceGiveUp is called when a Connect returns a ConnectError.
	TraceGiveUp(ctx context.Context, data GiveUpData)
}

// NopTracer is a Tracer that does nothing: embed it in a Tracer that
// implements only some methods.
type NopTracer struct{}

// TraceFetchStart returns ctx.
func (NopTracer) TraceFetchStart(ctx context.Context, _ FetchStartData) context.Context { return ctx }

// TraceFetchEnd does nothing.
func (NopTracer) TraceFetchEnd(context.Context, FetchEndData) {}

// TraceLogin does nothing.
func (NopTracer) TraceLogin(context.Context, LoginData) {}

// TraceSwitch does nothing.
func (NopTracer) TraceSwitch(context.Context, SwitchData) {}

// TraceGiveUp does nothing.
func (NopTracer) TraceGiveUp(context.Context, GiveUpData) {}

var _ Tracer = NopTracer{}

// FetchStartData describes a fetch about to begin.
type FetchStartData struct {
	SecretID string
	Stage    credsource.Stage
	// Bypass is true when the source is asked to bypass a cache of its own
	// (the agent's): what it answered before offered nothing that works.
	Bypass bool
}

// FetchEndData describes the answer to a fetch.
type FetchEndData struct {
	SecretID string
	Stage    credsource.Stage
	// VersionID and Source (the source that answered: "secretsmanager",
	// "agent"...) describe the version fetched; empty on error.
	VersionID, Source string
	// NotFound is true when the source answered that the stage holds no
	// version (AWSPENDING outside a rotation): an answer, not an error.
	NotFound bool
	// Err is the fetch's error (nil on success and with NotFound), its
	// text redacted by credsource.Redact.
	Err error
	// Background is true for a version fetched outside the Connect (see
	// Tracer.TraceFetchEnd).
	Background bool
}

// LoginOutcome says what a login's end tells of the version it used.
type LoginOutcome string

// The outcomes of a login.
const (
	// LoginAccepted: the server accepted the credentials.
	LoginAccepted LoginOutcome = "accepted"
	// LoginRefused: the server refused them with 1045 (access denied).
	LoginRefused LoginOutcome = "refused"
	// LoginFailed: another failure (network, TLS, another server error).
	LoginFailed LoginOutcome = "failed"
	// LoginLocked: the server locked or blocked the account (MariaDB
	// 4150/4151, MySQL 3118/3955, 1129).
	LoginLocked LoginOutcome = "locked"
	// LoginAbandoned: the caller's context or loginTimeout ended the login
	// before the server answered.
	LoginAbandoned LoginOutcome = "abandoned"
)

// loginOutcomes maps the ledger's outcomes to LoginOutcome.
var loginOutcomes = [...]LoginOutcome{
	ledger.Accepted:  LoginAccepted,
	ledger.Refused:   LoginRefused,
	ledger.Failed:    LoginFailed,
	ledger.Locked:    LoginLocked,
	ledger.Abandoned: LoginAbandoned,
}

// LoginData describes a login the connector made.
type LoginData struct {
	SecretID string
	// Stage is the label the source gave the version at the connector's
	// last fetch (AWSCURRENT, AWSPENDING; empty when it has none any
	// more): after finishSecret, AWSPENDING until the next fetch.
	// VersionID is the version.
	Stage     credsource.Stage
	VersionID string
	// Username is the database user: for span attributes, never a metric
	// label.
	Username string
	Outcome  LoginOutcome
	// Number is the server's error number (1045, a lock number...); zero
	// when the login succeeded or the server gave none.
	Number uint16
	// Duration is how long the login took.
	Duration time.Duration
	// HoldUntil, after a refusal or a lock error, is until when the
	// connector holds the version back (no login with it, but one probe
	// when it ends); zero otherwise.
	HoldUntil time.Time
	// AlreadyRefused is true when the version was already held back when
	// the refusal came (a login in flight, or a probe).
	AlreadyRefused bool
}

// SwitchData describes a change of the version new connections use.
type SwitchData struct {
	SecretID  string
	Stage     credsource.Stage
	VersionID string
	// Username is the database user: for span attributes only.
	Username string
	// Initial is true for the connector's first login: nothing to switch
	// from, as far as this connector knows.
	Initial bool
}

// GiveUpReason says why a Connect gave up.
type GiveUpReason string

// The reasons a Connect gives up.
const (
	// GiveUpCanceled: the caller's context ended.
	GiveUpCanceled GiveUpReason = "canceled"
	// GiveUpRetryTimeout: retryTimeout passed.
	GiveUpRetryTimeout GiveUpReason = "retry_timeout"
	// GiveUpLoginCap: the Connect made maxLoginAttempts logins.
	GiveUpLoginCap GiveUpReason = "login_cap"
	// GiveUpAccountLocked: the server locked the account, past the
	// deadline.
	GiveUpAccountLocked GiveUpReason = "account_locked"
	// GiveUpNoUsableVersion: every version is held back and none will be
	// tried before the deadline (the secret is wrong everywhere).
	GiveUpNoUsableVersion GiveUpReason = "no_usable_version"
)

// GiveUpData describes a Connect that gave up.
type GiveUpData struct {
	SecretID string
	Reason   GiveUpReason
	// Refusals is how many of the Connect's logins the server refused.
	Refusals int
	// Err is the ConnectError returned (its text holds no password).
	Err error
}

// tracer returns the configured tracer, or NopTracer.
func (c *Config) tracer() Tracer {
	if c.Tracer == nil {
		return NopTracer{}
	}
	return c.Tracer
}
