package rotatingmysql

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/retry"
)

// refusedQuarantine is how long a version the server refused (1045) is not
// dialed again while nothing newer is known. Servers count failed logins per
// account (MariaDB max_password_errors, MySQL FAILED_LOGIN_ATTEMPTS); the
// quarantine keeps a secret that is wrong everywhere from locking the
// account, while still noticing, a minute later, that an operator has fixed
// the password on the server.
const refusedQuarantine = time.Minute

// maxVersions bounds the versions a connector remembers.
const maxVersions = 8

// Connector is the rotatingmysql driver.Connector. It fetches credentials
// through a cached source, dials through go-sql-driver/mysql, and absorbs
// MySQL error 1045 during a password rotation. Use it with sql.OpenDB; it is
// safe for concurrent use.
type Connector struct {
	cfg   *Config
	src   credsource.Source
	cache *credsource.Cache
	log   *slog.Logger

	mu       sync.Mutex
	versions map[verKey]*version
	lastSec  *credsource.Secret // memo of the last AWSCURRENT resolved
	lastVer  *version

	good atomic.Pointer[version] // the version that last logged in

	authRefused, pendingUsed, recovered, gaveUp atomic.Uint64
}

var _ driver.Connector = (*Connector)(nil)

// verKey identifies a version by a hash of what it logs in with, so that the
// same credentials fetched twice (or under two stages) are one version.
type verKey [sha256.Size]byte

// version is one set of credentials with its own mysql connector.
type version struct {
	key      verKey
	meta     atomic.Pointer[verMeta] // replaced when the version is fetched again
	mysql    driver.Connector
	failedAt atomic.Int64 // unix nanoseconds of the last 1045; 0 when not refused since its last login
	// refusedAt is when the connector last recorded a 1045 for the
	// version (unix nanoseconds): a login that began earlier proves nothing.
	refusedAt atomic.Int64
	lastErr   atomic.Pointer[mysql.MySQLError]
}

// verMeta is what the latest fetch said of a version.
type verMeta struct {
	secret *credsource.Secret
	stage  credsource.Stage // the stage it was fetched as; Current wins
}

func (v *version) refused() bool { return v.failedAt.Load() != 0 }

func (v *version) info() *verMeta { return v.meta.Load() }

// NewConnector returns a connector for cfg. It validates cfg and does no
// network I/O: the first fetch happens on the first connection.
func NewConnector(cfg *Config) (*Connector, error) {
	cfg = cfg.clone()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	src, err := cfg.newSource()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Connector{
		cfg:      cfg,
		src:      src,
		log:      log,
		versions: make(map[verKey]*version, 4),
	}
	c.cache = credsource.NewCache(src, credsource.CacheOptions{TTL: cfg.TTL, Logger: log})
	return c, nil
}

// Driver returns the rotatingmysql driver.
func (c *Connector) Driver() driver.Driver { return theDriver }

// Format prints the connector as its configuration (see Config.Format),
// under every verb: the credentials it holds are never printed.
func (c *Connector) Format(f fmt.State, verb rune) {
	_, _ = fmt.Fprintf(f, "rotatingmysql.Connector{%v}", c.cfg)
}

var _ fmt.Formatter = (*Connector)(nil)

// Close closes the credential source if it holds resources. database/sql
// calls it from DB.Close.
func (c *Connector) Close() error {
	if cl, ok := c.src.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// Connect opens a connection with the cached AWSCURRENT credentials (or the
// version that last logged in, during a rotation) and recovers from 1045 by
// refreshing AWSCURRENT and trying AWSPENDING. The connection returned is
// go-sql-driver/mysql's own, so the query path is the mysql driver's.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	sec, err := c.cache.Get(ctx, credsource.Current)
	if err != nil {
		return nil, c.fetchError(credsource.Current, err)
	}
	v, err := c.pick(sec)
	if err != nil {
		return nil, err
	}
	if v == nil {
		// Every version known was refused moments ago: wait for news
		// rather than spend another failed login on them.
		return c.recover(ctx, nil, nil)
	}
	start := time.Now()
	conn, err := v.mysql.Connect(ctx)
	if err == nil {
		c.succeeded(v, start)
		return conn, nil
	}
	if !retry.IsAuthError(err) {
		return nil, err
	}
	c.refuse(v, err, start)
	return c.recover(ctx, v, err)
}

// pick chooses the version to dial for the AWSCURRENT secret sec: sec
// itself unless the server refused it, else the version that last logged in
// (the AWSPENDING of a rotation stuck before finishSecret). nil means every
// known version was refused less than refusedQuarantine ago.
func (c *Connector) pick(sec *credsource.Secret) (*version, error) {
	c.mu.Lock()
	v := c.lastVer
	if sec != c.lastSec {
		var err error
		if v, err = c.resolveLocked(sec, credsource.Current); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.lastSec, c.lastVer = sec, v
	}
	c.mu.Unlock()
	failedAt := v.failedAt.Load()
	if failedAt == 0 {
		return v, nil
	}
	if g := c.good.Load(); g != nil && g != v && !g.refused() {
		return g, nil
	}
	if time.Since(time.Unix(0, failedAt)) >= refusedQuarantine {
		return v, nil
	}
	return nil, nil
}

// resolveLocked returns the version for a fetched secret, making its mysql
// connector the first time those credentials are seen. c.mu must be held.
func (c *Connector) resolveLocked(sec *credsource.Secret, stage credsource.Stage) (*version, error) {
	host := c.cfg.Host
	if host == "" {
		host = sec.Creds.Host
	}
	if host == "" {
		return nil, fmt.Errorf("rotatingmysql: secret %q (version %s) has no host (RDS-managed rds!... secrets hold only username and password): add host=... to the DSN",
			sec.ID, sec.VersionID)
	}
	port := c.cfg.Port
	if port == 0 {
		port = sec.Creds.Port
	}
	if port == 0 {
		port = 3306
	}
	dbname := c.cfg.DBName
	if dbname == "" {
		dbname = sec.Creds.DBName
	}
	h := sha256.New()
	for _, s := range []string{sec.Creds.Username, sec.Creds.Password, host, strconv.Itoa(port), dbname} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var key verKey
	h.Sum(key[:0])
	if v, ok := c.versions[key]; ok {
		if m := v.info(); m.secret != sec && (stage == credsource.Current || m.stage != credsource.Current) {
			v.meta.Store(&verMeta{secret: sec, stage: stage})
		}
		return v, nil
	}
	mc := c.cfg.MySQL.Clone()
	mc.User = sec.Creds.Username
	mc.Passwd = sec.Creds.Password
	mc.Net = "tcp"
	mc.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	mc.DBName = dbname
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("rotatingmysql: secret %q: mysql configuration: %w", sec.ID, err)
	}
	v := &version{key: key, mysql: conn}
	v.meta.Store(&verMeta{secret: sec, stage: stage})
	if len(c.versions) >= maxVersions {
		for k, old := range c.versions {
			if old != c.lastVer && old != c.good.Load() {
				delete(c.versions, k)
			}
		}
	}
	c.versions[key] = v
	return v, nil
}

// succeeded records that v logged in with a login that began at start.
func (c *Connector) succeeded(v *version, start time.Time) {
	if r := v.refusedAt.Load(); r != 0 && start.UnixNano() <= r {
		// The login began before the server's 1045 for v was recorded:
		// the server may have checked it before the password changed.
		// It neither clears the refusal nor makes v the version to use,
		// else every dialer would try the old password again
		// (TestCountRotationUnderLoad).
		return
	}
	if v.failedAt.Load() != 0 {
		v.failedAt.Store(0)
	}
	for {
		old := c.good.Load()
		if old == v {
			return
		}
		// Compare-and-swap so that a switch made by several connections
		// at once is counted and logged once.
		if !c.good.CompareAndSwap(old, v) {
			continue
		}
		if m := v.info(); m.stage == credsource.Pending {
			c.pendingUsed.Add(1)
			c.log.LogAttrs(context.Background(), slog.LevelInfo, "rotatingmysql: using AWSPENDING: the database has the new password, AWSCURRENT not yet",
				slog.String("secret", m.secret.ID), slog.String("stage", string(m.stage)),
				slog.String("version_id", m.secret.VersionID), slog.String("user", m.secret.Creds.Username))
		}
		return
	}
}

// refuse records that the server answered 1045 to v for a login that
// started at start.
func (c *Connector) refuse(v *version, err error, start time.Time) {
	c.authRefused.Add(1)
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		v.lastErr.Store(me)
	}
	known := v.failedAt.Swap(start.UnixNano()) != 0
	storeLater(&v.refusedAt, time.Now().UnixNano())
	m := v.info()
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "rotatingmysql: login refused (1045)",
		slog.String("secret", m.secret.ID), slog.String("stage", string(m.stage)),
		slog.String("version_id", m.secret.VersionID), slog.String("user", m.secret.Creds.Username),
		slog.Bool("already_refused", known))
}

// storeLater sets a to t unless it already holds a later time.
func storeLater(a *atomic.Int64, t int64) {
	for old := a.Load(); t > old && !a.CompareAndSwap(old, t); old = a.Load() {
	}
}

// errRetryRound ends a recovery round in which no version logged in.
var errRetryRound = errors.New("no version logged in this round")

// recovery is the state of one Connect's recovery from 1045.
type recovery struct {
	c        *Connector
	logins   int
	attempts []Attempt
	lastErr  error // the last *mysql.MySQLError 1045
	cause    error // why the retry stopped early, if it did
	fatal    error // a dial error other than 1045, returned as is
}

func (r *recovery) note(v *version, err error) {
	m := v.info()
	r.attempts = append(r.attempts, Attempt{Stage: m.stage, VersionID: m.secret.VersionID, Username: m.secret.Creds.Username, Err: err})
	r.lastErr = err
}

// recover runs rounds of "learn what the secret holds now, dial what is
// new" with exponential backoff between them, until a login succeeds, the
// login cap is reached, or the deadline passes. failed is the version whose
// dial met err (nil when Connect did not dial).
func (c *Connector) recover(ctx context.Context, failed *version, err error) (driver.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Retry.Timeout)
	defer cancel()
	r := &recovery{c: c}
	var since time.Time
	if failed != nil {
		r.logins = 1
		r.note(failed, err)
		since = time.Unix(0, failed.failedAt.Load())
	} else if v := c.currentVersion(); v != nil {
		since = time.Unix(0, v.failedAt.Load())
	}
	conn, err := backoff.RetryWithData(func() (driver.Conn, error) {
		conn, err := r.round(ctx, since)
		since = time.Now()
		return conn, err
	}, backoff.WithContext(c.cfg.Retry.NewBackOff(), ctx))
	if err == nil {
		c.recovered.Add(1)
		return conn, nil
	}
	if r.fatal != nil {
		// The server's own answer (account locked, no such database) or a
		// network failure: not a rotation, returned as the mysql driver
		// gave it.
		return nil, r.fatal
	}
	c.gaveUp.Add(1)
	ce := &ConnectError{SecretID: c.cfg.SecretID, Attempts: r.attempts, Err: r.lastErr, Cause: r.cause}
	ce.Hint = c.cfg.loginHint() // issue 12: what to check when an IAM token is refused
	if ce.Cause == nil && ctx.Err() != nil {
		ce.Cause = ctx.Err()
	}
	if ce.Err == nil {
		ce.Err = ErrNoUsableCredentials
		if v := c.currentVersion(); v != nil {
			if me := v.lastErr.Load(); me != nil {
				ce.Err = fmt.Errorf("%w: %w", ErrNoUsableCredentials, me)
			}
		}
	}
	c.log.LogAttrs(ctx, slog.LevelError, "rotatingmysql: gave up connecting",
		slog.String("secret", c.cfg.SecretID), slog.Int("attempts", len(r.attempts)), slog.Any("error", ce))
	return nil, ce
}

// errLoginCap stops the recovery when the Connect has made its quota of
// logins.
var errLoginCap = errors.New("login attempts per connection reached maxLoginAttempts")

// round learns what the secret holds now and dials each version the server
// has not refused.
func (r *recovery) round(ctx context.Context, since time.Time) (driver.Conn, error) {
	c := r.c
	cands, err := c.candidates(ctx, since)
	if err != nil {
		r.cause = err
	}
	for _, v := range cands {
		if r.logins >= c.cfg.Retry.MaxLogins {
			r.cause = errLoginCap
			return nil, backoff.Permanent(errLoginCap)
		}
		start := time.Now()
		conn, err := v.mysql.Connect(ctx)
		r.logins++
		if err == nil {
			c.succeeded(v, start)
			r.cause = nil
			return conn, nil
		}
		if !retry.IsAuthError(err) {
			if ctx.Err() != nil {
				r.cause = ctx.Err()
			} else {
				r.fatal = err
			}
			return nil, backoff.Permanent(err)
		}
		c.refuse(v, err, start)
		r.note(v, err)
	}
	return nil, errRetryRound
}

// currentVersion returns the version of the last AWSCURRENT resolved.
func (c *Connector) currentVersion() *version {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastVer
}

// candidates refreshes AWSCURRENT and reads AWSPENDING in parallel (one
// round trip; both fetches coalesce with any already under way since the
// given time) and returns the versions worth a login: those the server has
// not refused, current first.
func (c *Connector) candidates(ctx context.Context, since time.Time) ([]*version, error) {
	var pend *credsource.Secret
	var perr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		pend, perr = c.cache.Refresh(ctx, credsource.Pending, since)
	}()
	cur, cerr := c.cache.Refresh(ctx, credsource.Current, since)
	<-done

	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*version, 0, 3)
	add := func(v *version) {
		if v == nil || v.refused() {
			return
		}
		for _, o := range out {
			if o == v {
				return
			}
		}
		out = append(out, v)
	}
	var err error
	if cur != nil {
		v, rerr := c.resolveLocked(cur, credsource.Current)
		if rerr != nil {
			err = rerr
		} else {
			c.lastSec, c.lastVer = cur, v
			add(v)
		}
	} else if cerr != nil {
		err = c.fetchError(credsource.Current, cerr)
	}
	if pend != nil {
		v, rerr := c.resolveLocked(pend, credsource.Pending)
		if rerr != nil && err == nil {
			err = rerr
		}
		add(v)
	} else if perr != nil && !errors.Is(perr, credsource.ErrNotFound) && !errors.Is(perr, credsource.ErrNoStages) && err == nil && ctx.Err() == nil {
		err = c.fetchError(credsource.Pending, perr)
	}
	add(c.good.Load())
	return out, err
}

// fetchError wraps a source error with the secret and stage.
func (c *Connector) fetchError(stage credsource.Stage, err error) error {
	return fmt.Errorf("rotatingmysql: fetch %s of secret %q: %w", stage, c.cfg.SecretID, err)
}
