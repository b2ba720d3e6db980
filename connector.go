package rotatingmysql

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/ledger"
)

// Connector is the rotatingmysql driver.Connector. It fetches credentials
// through a cached source, dials through go-sql-driver/mysql, and absorbs
// MySQL error 1045 during a password rotation. Which version of the secret
// it dials is decided from the evidence it has: what the source labels
// each version, and which logins the server accepted or refused (see
// docs/how-it-decides.md). Use it with sql.OpenDB; it is safe for
// concurrent use.
type Connector struct {
	cfg    *Config
	sh     *shared // source and cache, shared with the process's connectors on the same secret
	ledger *ledger.Ledger[*version]
	log    *slog.Logger
	tr     Tracer // NopTracer when none is set

	mu      sync.RWMutex
	dialers map[ledger.Key]driver.Connector // this connector's mysql settings, per version

	lastSec   atomic.Pointer[credsource.Secret] // the last AWSCURRENT given to the ledger
	closeOnce sync.Once
	closeErr  error

	authRefused, pendingUsed, recovered, gaveUp atomic.Uint64
	loggedIn                                    atomic.Bool // a login was accepted (SwitchData.Initial)
}

var _ driver.Connector = (*Connector)(nil)

// version is one set of credentials, as the ledger knows it (shared by the
// connectors of a secret).
type version struct {
	key     ledger.Key
	secret  atomic.Pointer[credsource.Secret] // the latest fetch of it
	lastErr atomic.Pointer[mysql.MySQLError]  // the server's last 1045 for it
}

// NewConnector returns a connector for cfg. It validates cfg and does no
// network I/O: the first fetch happens on the first connection. Connectors
// on the same secret with the same source settings share one source, cache
// and ledger (see Config.IsolateCache); Close releases them.
func NewConnector(cfg *Config) (*Connector, error) {
	cfg = cfg.clone()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sh, l, err := acquire(cfg)
	if err != nil {
		return nil, err
	}
	return &Connector{cfg: cfg, sh: sh, ledger: l, log: cfg.logger(), tr: cfg.tracer(),
		dialers: make(map[ledger.Key]driver.Connector, 2)}, nil
}

// Driver returns the rotatingmysql driver.
func (c *Connector) Driver() driver.Driver { return theDriver }

// Format prints the connector as its configuration (see Config.Format),
// under every verb: the credentials it holds are never printed.
func (c *Connector) Format(f fmt.State, verb rune) {
	_, _ = fmt.Fprintf(f, "rotatingmysql.Connector{%v}", c.cfg)
}

var _ fmt.Formatter = (*Connector)(nil)

// Close releases the connector's share of the source, cache and ledger;
// the last connector to close them closes the source's resources (idle
// HTTP connections). database/sql calls it from DB.Close. Calling it again
// does nothing.
func (c *Connector) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.sh.release(c.ledger) })
	return c.closeErr
}

// Connect opens a connection with the version the ledger picks: the cached
// AWSCURRENT, or the version that last logged in during a rotation. On 1045
// it refreshes the secret, tries AWSPENDING and what is new, within
// maxLoginAttempts and retryTimeout. The connection returned is
// go-sql-driver/mysql's own, so the query path is the mysql driver's.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	// The fast path: a cached AWSCURRENT and a proven version, one dial;
	// its only allocations are the login bound's (when ctx has no
	// deadline).
	if sec, ok := c.sh.cache.Cached(credsource.Current); ok {
		if sec != c.lastSec.Load() {
			if err := c.observe(credsource.Current, sec); err != nil {
				return nil, err
			}
			c.tr.TraceFetchEnd(ctx, FetchEndData{SecretID: c.cfg.SecretID, Stage: credsource.Current,
				VersionID: sec.VersionID, Source: sec.Source, Background: true})
		}
		if d := c.ledger.Decide(time.Now()); d.Kind == ledger.Dial {
			conn, o, err := c.dial(ctx, d.Ticket)
			if d.Ticket.Recovers(o) {
				return c.recover(ctx, d.Ticket, o, err)
			}
			return conn, err
		}
	}
	return c.recover(ctx, ledger.Ticket[*version]{}, ledger.Abandoned, nil)
}

// observe gives the ledger what the source labels stage: sec, resolved to
// its version (made the first time those credentials are seen).
func (c *Connector) observe(stage credsource.Stage, sec *credsource.Secret) error {
	key, acct, mc, err := c.resolve(sec)
	if err != nil {
		return err
	}
	v, ok := c.ledger.Version(key)
	if !ok {
		v = &version{key: key}
	}
	v.secret.Store(sec)
	c.ledger.Observe(ledger.Stage(stage), key, acct, v, time.Now())
	if !sec.Expires.IsZero() {
		c.ledger.Expires(key, sec.Expires) // an IAM token: not dialed past it
	}
	c.mu.RLock()
	_, known := c.dialers[key]
	c.mu.RUnlock()
	if !known {
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return fmt.Errorf("rotatingmysql: secret %q: mysql configuration: %w", sec.ID, err)
		}
		c.mu.Lock()
		c.dialers[key] = conn
		// Forget the dialers of versions the ledger has forgotten (a
		// token a rotation, an IAM token every quarter hour).
		for k := range c.dialers {
			if _, ok := c.ledger.Version(k); !ok {
				delete(c.dialers, k)
			}
		}
		c.mu.Unlock()
	}
	if stage == credsource.Current {
		c.lastSec.Store(sec)
	}
	return nil
}

// resolve returns the key, the account and the mysql configuration of the
// credentials in sec, with the DSN's host, port and database overrides.
func (c *Connector) resolve(sec *credsource.Secret) (ledger.Key, ledger.Account, *mysql.Config, error) {
	host := c.hostOf(sec)
	if host == "" {
		return ledger.Key{}, "", nil, fmt.Errorf("rotatingmysql: secret %q (version %s) has no host (RDS-managed rds!... secrets hold only username and password): add host=... to the DSN",
			sec.ID, sec.VersionID)
	}
	dbname := c.cfg.DBName
	if dbname == "" {
		dbname = sec.Creds.DBName
	}
	addr := c.addrOf(sec)
	// The key is what the server checks: user, password and server. The
	// database is each connector's own (pools on other databases share
	// the evidence of one account).
	h := sha256.New()
	for _, s := range []string{sec.Creds.Username, sec.Creds.Password, addr} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var key ledger.Key
	h.Sum(key[:0])
	mc := c.cfg.MySQL.Clone()
	mc.User = sec.Creds.Username
	mc.Passwd = sec.Creds.Password
	mc.Net = "tcp"
	mc.Addr = addr
	mc.DBName = dbname
	mc.DialFunc = boundedDial(mc.DialFunc)
	return key, ledger.Account(sec.Creds.Username + "@" + addr), mc, nil
}

// dial makes the login the ledger allowed, bounded by the caller's
// deadline or, when it has none, by loginTimeout, and reports its outcome.
// A login the bound cut short returns ErrLoginTimeout, not the context's
// error: only the caller's context makes errors.Is(err,
// context.DeadlineExceeded) true.
func (c *Connector) dial(ctx context.Context, t ledger.Ticket[*version]) (driver.Conn, ledger.Outcome, error) {
	v := t.Payload()
	lctx, bound := ctx, (*loginBound)(nil)
	if _, ok := ctx.Deadline(); !ok {
		// The bound is a deadline on the connection itself, set by the
		// dial and cleared once logged in (see boundedDial): a context
		// with a deadline would cost a timer and the mysql driver's
		// watcher on every connection, the fast path's included.
		bound = &loginBound{deadline: time.Now().Add(c.cfg.loginTimeout())}
		lctx = context.WithValue(ctx, loginBoundKey{}, bound)
	}
	start := time.Now()
	conn, err := c.dialer(v).Connect(lctx)
	if bound != nil && bound.conn != nil && err == nil {
		err = bound.conn.SetDeadline(time.Time{})
		if err != nil {
			conn.Close()
			conn = nil
		}
	}
	var number uint16
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		number = me.Number
	}
	cut := err != nil && (ctx.Err() != nil || bound != nil && !time.Now().Before(bound.deadline))
	o := ledger.Classify(err == nil, number, cut)
	now := time.Now()
	var already, switched bool
	switch o {
	case ledger.Refused:
		already = c.ledger.Refused(v.key)
		c.ledger.Report(t, o, now)
		c.refused(v, err, already)
	case ledger.Locked:
		c.ledger.ReportLocked(t, me, now)
	default:
		switched = c.ledger.Report(t, o, now)
		if o == ledger.Accepted && t.Claim {
			// A refused version logs in again only as a trial or probe.
			refusals.Delete(v.key)
		}
	}
	c.traceLogin(ctx, v, o, number, now.Sub(start), already)
	if switched {
		c.switched(ctx, v)
	}
	if o == ledger.Accepted && !c.loggedIn.Load() {
		c.loggedIn.Store(true)
	}
	err = explainDialError(err)
	if o == ledger.Abandoned && ctx.Err() == nil {
		// The login bound, not the caller, ended it.
		err = &LoginTimeoutError{SecretID: c.cfg.SecretID, Addr: c.addrOf(v.secret.Load()), Timeout: c.cfg.loginTimeout()}
	}
	return conn, o, err
}

// loginBound is the deadline of one login whose caller set none, and the
// connection the dial made for it.
type loginBound struct {
	deadline time.Time
	conn     net.Conn
}

type loginBoundKey struct{}

// boundedDial wraps the mysql driver's dial (next, or a plain TCP dial
// when nil) for a login with a loginBound in its context: the TCP connect
// and, through a deadline on the connection, the handshake end at the
// bound's deadline. go-sql-driver sets no deadline of its own without
// readTimeout and writeTimeout, and dial clears this one after the login,
// so the query path is untouched.
func boundedDial(next func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		b, _ := ctx.Value(loginBoundKey{}).(*loginBound)
		var conn net.Conn
		var err error
		switch {
		case next != nil:
			conn, err = next(ctx, network, addr)
		case b != nil:
			d := net.Dialer{Deadline: b.deadline}
			conn, err = d.DialContext(ctx, network, addr)
		default:
			var d net.Dialer
			conn, err = d.DialContext(ctx, network, addr)
		}
		if err != nil || b == nil {
			return conn, err
		}
		if err := conn.SetDeadline(b.deadline); err != nil {
			conn.Close()
			return nil, err
		}
		b.conn = conn
		return conn, nil
	}
}

// hostOf returns the host a version dials: the DSN's, else the secret's
// ("" when neither has one).
func (c *Connector) hostOf(sec *credsource.Secret) string {
	if c.cfg.Host != "" {
		return c.cfg.Host
	}
	return sec.Creds.Host
}

// addrOf returns the host:port a version dials: the DSN's host and port,
// else the secret's, the port 3306 by default.
func (c *Connector) addrOf(sec *credsource.Secret) string {
	port := c.cfg.Port
	if port == 0 {
		port = sec.Creds.Port
	}
	if port == 0 {
		port = 3306
	}
	return net.JoinHostPort(c.hostOf(sec), strconv.Itoa(port))
}

// dialer returns this connector's mysql connector for v, made from its
// latest fetch when another connector sharing the ledger observed it first.
func (c *Connector) dialer(v *version) driver.Connector {
	c.mu.RLock()
	d, ok := c.dialers[v.key]
	c.mu.RUnlock()
	if ok {
		return d
	}
	_, _, mc, err := c.resolve(v.secret.Load())
	if err != nil {
		return failingDialer{err}
	}
	if d, err = mysql.NewConnector(mc); err != nil {
		return failingDialer{fmt.Errorf("rotatingmysql: secret %q: mysql configuration: %w", c.cfg.SecretID, err)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.dialers[v.key]; ok {
		return prev
	}
	c.dialers[v.key] = d
	return d
}

// failingDialer answers every Connect with err.
type failingDialer struct{ err error }

func (f failingDialer) Connect(context.Context) (driver.Conn, error) { return nil, f.err }
func (f failingDialer) Driver() driver.Driver                        { return theDriver }

// traceLogin gives the tracer a login's outcome. Without a tracer it
// returns at once: the stage is read under the ledger's lock, which every
// Connect takes.
func (c *Connector) traceLogin(ctx context.Context, v *version, o ledger.Outcome, number uint16, took time.Duration, already bool) {
	if c.tr == (NopTracer{}) {
		return
	}
	sec := v.secret.Load()
	d := LoginData{SecretID: c.cfg.SecretID, Stage: c.stageOf(v), VersionID: sec.VersionID, Username: sec.Creds.Username,
		Outcome: loginOutcomes[o], Number: number, Duration: took, AlreadyRefused: already}
	if o == ledger.Refused || o == ledger.Locked {
		d.HoldUntil = c.ledger.HoldUntil(v.key, time.Now())
	}
	c.tr.TraceLogin(ctx, d)
}

// switched logs, counts and traces a change of the version new
// connections use.
func (c *Connector) switched(ctx context.Context, v *version) {
	sec := v.secret.Load()
	stage := c.stageOf(v)
	c.tr.TraceSwitch(ctx, SwitchData{SecretID: c.cfg.SecretID, Stage: stage, VersionID: sec.VersionID,
		Username: sec.Creds.Username, Initial: !c.loggedIn.Load()})
	if stage != credsource.Pending {
		return
	}
	c.pendingUsed.Add(1)
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "rotatingmysql: using AWSPENDING: the database has the new password, AWSCURRENT not yet",
		slog.String("secret", sec.ID), slog.String("stage", string(credsource.Pending)),
		slog.String("version_id", sec.VersionID), slog.String("user", sec.Creds.Username))
}

// refused records the server's 1045 for v; already says the version was
// held back when it came (a dial that was in flight, or a probe).
func (c *Connector) refused(v *version, err error, already bool) {
	c.authRefused.Add(1)
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		v.lastErr.Store(me)
		refusals.Store(v.key, me)
	}
	sec := v.secret.Load()
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "rotatingmysql: login refused (1045)",
		slog.String("secret", sec.ID), slog.String("stage", string(c.stageOf(v))),
		slog.String("version_id", sec.VersionID), slog.String("user", sec.Creds.Username),
		slog.Bool("already_refused", already))
}

// stageOf returns the label the source gives v now ("" when none).
func (c *Connector) stageOf(v *version) credsource.Stage {
	return credsource.Stage(c.ledger.LabelOf(v.key))
}

// errLoginCap stops the recovery when the Connect has made its quota of
// logins.
var errLoginCap = errors.New("login attempts per connection reached maxLoginAttempts")

// recover is the slow path of Connect: it asks the ledger for the next
// step (ledger.Next: fetch, dial, wait or give up) and carries it out,
// until a login succeeds, the ledger gives up, or the deadline passes.
// failed is the ticket whose dial met err with outcome o (zero when Connect
// has not dialed): a 1045, or another failure of a trial or probe, after
// which another version may still serve. retryTimeout bounds the waits and
// fetches; a login in progress is bounded only by the caller's deadline or
// loginTimeout.
func (c *Connector) recover(ctx context.Context, failed ledger.Ticket[*version], o ledger.Outcome, err error) (driver.Conn, error) {
	rctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Retry.Timeout, ErrRetryTimeout)
	defer cancel()
	r := &recovery{c: c, ctx: ctx, rctx: rctx}
	deadline, _ := rctx.Deadline()
	at := &ledger.Attempt{Deadline: deadline, MaxLogins: c.cfg.Retry.MaxLogins}
	other := err // returned as is when the ledger has no other version
	if failed != (ledger.Ticket[*version]{}) {
		at.Started()
		at.After(failed.Key(), failed.Claim, o)
		if o == ledger.Refused {
			r.note(failed.Payload(), err)
		}
	} else if sec, err := c.first(rctx); err == nil {
		if err := c.observe(credsource.Current, sec); err != nil {
			return nil, err
		}
	} else if !c.ledger.Known() || rctx.Err() != nil {
		// Nothing known to dial (or out of time): the source's answer is
		// the error. With versions known (a not-found answer, a failed
		// TTL refresh) the ledger decides.
		return nil, c.fetchError(credsource.Current, r.cause(err))
	}
	bo := c.cfg.Retry.NewBackOff()
	for {
		now := time.Now()
		next := c.ledger.Next(at, now)
		switch next.Step {
		case ledger.StepFetch:
			c.refresh(rctx, next.Stage, next.Since, next.Bypass)
			if rctx.Err() != nil {
				return nil, r.giveUp(nil)
			}
		case ledger.StepDial:
			conn, o, err := c.dial(ctx, next.Ticket)
			if o == ledger.Accepted {
				if at.Logins() > 1 {
					c.recovered.Add(1)
				}
				return conn, nil
			}
			if ctx.Err() != nil && o != ledger.Refused {
				return nil, r.giveUp(nil)
			}
			if !at.After(next.Ticket.Key(), next.Ticket.Claim, o) {
				// The server's own answer (account locked, no such
				// database), a network failure or a login cut short by
				// loginTimeout: not a rotation, returned as the mysql
				// driver gave it.
				return nil, err
			}
			if o == ledger.Refused {
				r.note(next.Ticket.Payload(), err)
			} else {
				other = err
			}
		case ledger.StepFail:
			return nil, other
		case ledger.StepGiveUp:
			switch next.Cause {
			case ledger.LoginCap:
				return nil, r.giveUp(errLoginCap)
			case ledger.NoVersion:
				return nil, c.fetchError(credsource.Current, r.cause(errors.New("no version fetched")))
			case ledger.AccountLocked:
				r.locked = next.Locked
				return nil, r.giveUp(ErrAccountLocked)
			}
			return nil, r.giveUp(nil)
		case ledger.StepWait:
			if next.Locked != nil {
				r.locked = next.Locked // a lock of the account holds this Connect
			}
			// Wake for what falls due first, news from another connection
			// (Changed), or the next backoff step.
			wake := now.Add(bo.NextBackOff())
			if !next.Until.IsZero() && next.Until.Before(wake) {
				wake = next.Until
			}
			timer := time.NewTimer(time.Until(wake))
			select {
			case <-rctx.Done():
				timer.Stop()
				return nil, r.giveUp(nil)
			case <-next.Changed:
			case <-timer.C:
			}
			timer.Stop()
		}
	}
}

// first returns AWSCURRENT from the cache, traced as a fetch when the
// cache has never held it (the first fetch).
func (c *Connector) first(ctx context.Context) (*credsource.Secret, error) {
	if c.sh.cache.Peek(credsource.Current) != nil {
		return c.sh.cache.Get(ctx, credsource.Current)
	}
	tctx := c.tr.TraceFetchStart(ctx, FetchStartData{SecretID: c.cfg.SecretID, Stage: credsource.Current})
	sec, err := c.sh.cache.Get(ctx, credsource.Current)
	c.traceFetchEnd(tctx, credsource.Current, sec, err)
	return sec, err
}

// traceFetchEnd gives the tracer the answer of a fetch of stage.
func (c *Connector) traceFetchEnd(ctx context.Context, stage credsource.Stage, sec *credsource.Secret, err error) {
	d := FetchEndData{SecretID: c.cfg.SecretID, Stage: stage}
	switch {
	case err == nil:
		d.VersionID, d.Source = sec.VersionID, sec.Source
	case errors.Is(err, credsource.ErrNotFound) || errors.Is(err, credsource.ErrNoStages):
		d.NotFound = true
	default:
		d.Err = credsource.Redact(err)
	}
	c.tr.TraceFetchEnd(ctx, d)
}

// refresh fetches stage (AWSPENDING or AWSCURRENT; "" for both, in
// parallel: one round trip), coalesced with any fetch of the same stage
// already under way since the given time, and gives the ledger what it
// says. bypass asks the source to bypass a cache of its own. After a 1045
// the ledger asks for AWSPENDING first: during a managed rotation it holds
// the new password, so a rotation costs one call (ledger.FetchDue).
func (c *Connector) refresh(ctx context.Context, stage ledger.Stage, since time.Time, bypass bool) {
	started := time.Now()
	load := c.sh.cache.RefreshThrough
	if bypass {
		load = c.sh.cache.Refresh
	}
	fetch := func(stage credsource.Stage) (*credsource.Secret, error) {
		tctx := c.tr.TraceFetchStart(ctx, FetchStartData{SecretID: c.cfg.SecretID, Stage: stage, Bypass: bypass})
		sec, err := load(ctx, stage, since)
		c.traceFetchEnd(tctx, stage, sec, err)
		return sec, err
	}
	var cur, pend *credsource.Secret
	var cerr, perr error
	switch stage {
	case "":
		done := make(chan struct{})
		go func() {
			defer close(done)
			pend, perr = fetch(credsource.Pending)
		}()
		cur, cerr = fetch(credsource.Current)
		<-done
	case ledger.Current:
		cur, cerr = fetch(credsource.Current)
	default:
		pend, perr = fetch(credsource.Pending)
	}
	if ctx.Err() != nil {
		return
	}
	if stage != ledger.Pending && cerr == nil {
		if err := c.observe(credsource.Current, cur); err != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "rotatingmysql: AWSCURRENT unusable", slog.Any("error", err))
		}
	}
	if stage != ledger.Current {
		switch {
		case perr == nil:
			if err := c.observe(credsource.Pending, pend); err != nil {
				c.log.LogAttrs(ctx, slog.LevelWarn, "rotatingmysql: AWSPENDING unusable", slog.Any("error", err))
			}
		case errors.Is(perr, credsource.ErrNotFound) || errors.Is(perr, credsource.ErrNoStages):
			c.ledger.NotFound(ledger.Pending)
		case stage == ledger.Pending:
			// The source failed (throttled, down): the round ends here,
			// and the next is MinInterval away, not AWSCURRENT now.
			stage = ""
		}
	}
	c.ledger.Fetched(stage, started)
}

// recovery is the state of one Connect's recovery from 1045.
type recovery struct {
	c         *Connector
	ctx, rctx context.Context // the caller's, and bounded by retryTimeout
	attempts  []Attempt
	lastErr   error // the last *mysql.MySQLError 1045 of this Connect
	locked    error // the server's lock error, when a lock of the account holds
}

func (r *recovery) note(v *version, err error) {
	sec := v.secret.Load()
	r.attempts = append(r.attempts, Attempt{Stage: r.c.stageOf(v), VersionID: sec.VersionID, Username: sec.Creds.Username, Err: err})
	r.lastErr = err
}

// cause says why the wait ended: the caller's context's error when it
// ended, ErrRetryTimeout when retryTimeout did, else err.
func (r *recovery) cause(err error) error {
	switch {
	case r.ctx.Err() != nil:
		return r.ctx.Err()
	case r.rctx.Err() != nil:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrRetryTimeout) {
			return fmt.Errorf("%w (last fetch: %w)", ErrRetryTimeout, err)
		}
		return ErrRetryTimeout
	}
	return err
}

// giveUp returns the ConnectError that ends a recovery.
func (r *recovery) giveUp(cause error) error {
	c := r.c
	c.gaveUp.Add(1)
	ce := &ConnectError{SecretID: c.cfg.SecretID, Attempts: r.attempts, Err: r.lastErr, Cause: r.cause(cause),
		Hint: c.cfg.loginHint()}
	if r.locked != nil {
		ce.Err = r.locked
	}
	if ce.Err == nil {
		ce.Err = ErrNoUsableCredentials
		if me := c.lastRefusal(); me != nil {
			ce.Err = fmt.Errorf("%w: %w", ErrNoUsableCredentials, me)
		}
	}
	c.log.LogAttrs(r.rctx, slog.LevelError, "rotatingmysql: gave up connecting",
		slog.String("secret", c.cfg.SecretID), slog.Int("attempts", len(r.attempts)), slog.Any("error", ce))
	c.tr.TraceGiveUp(r.ctx, GiveUpData{SecretID: c.cfg.SecretID, Reason: r.reason(cause), Refusals: len(r.attempts), Err: ce})
	return ce
}

// reason says why the recovery gives up, with the cause given to giveUp.
func (r *recovery) reason(cause error) GiveUpReason {
	switch {
	case r.ctx.Err() != nil:
		return GiveUpCanceled
	case r.rctx.Err() != nil:
		return GiveUpRetryTimeout
	case errors.Is(cause, errLoginCap):
		return GiveUpLoginCap
	case r.locked != nil:
		return GiveUpAccountLocked
	}
	return GiveUpNoUsableVersion
}

// lastRefusal returns the server's last 1045 for the AWSCURRENT or
// AWSPENDING version.
func (c *Connector) lastRefusal() *mysql.MySQLError {
	for _, st := range [...]ledger.Stage{ledger.Current, ledger.Pending} {
		if v, ok := c.ledger.Labelled(st); ok {
			if me := v.lastErr.Load(); me != nil {
				return me
			}
			// Refused to another pool of the process (the refusal holds
			// for every pool with the same login settings).
			if me, ok := refusals.Load(v.key); ok {
				return me.(*mysql.MySQLError)
			}
		}
	}
	return nil
}

// refusals holds the server's last 1045 for each version refused in the
// process, for the ConnectError of pools that were held back by another
// pool's refusal; an accepted login of the version forgets it.
var refusals sync.Map // ledger.Key -> *mysql.MySQLError

// fetchError wraps a source error with the secret and stage.
func (c *Connector) fetchError(stage credsource.Stage, err error) error {
	return credsource.Redact(fmt.Errorf("rotatingmysql: fetch %s of secret %q: %w", stage, c.cfg.SecretID, err))
}
