// Package retry decides which connection errors mean "the credentials may
// have rotated" and how long rotatingmysql waits between attempts.
//
// Only MySQL error 1045 (access denied) is a rotation signal. Errors that
// mean the account is locked or blocked, that the user lacks a privilege,
// or that the network failed are never retried here: retrying a lock makes
// it worse, and database/sql already retries driver.ErrBadConn.
package retry

import (
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/internal/ledger"
)

// MySQL and MariaDB error numbers the package classifies.
const (
	ErAccessDenied          = 1045 // wrong password, unknown user or host: may be rotation
	ErDBAccessDenied        = 1044 // no privilege on the database
	ErPluginIsNotLoaded     = 1698 // socket-auth user over TCP
	ErPasswordExpired       = 1820
	ErMustChangePassword    = 1862
	ErMySQLAccountLocked    = 3118
	ErMySQLFailedLoginLock  = 3955 // FAILED_LOGIN_ATTEMPTS reached
	ErMariaDBPasswordErrors = 4150 // max_password_errors reached
	ErMariaDBAccountLocked  = 4151
	ErHostBlocked           = 1129 // too many connection errors from the host (max_connect_errors)
)

// IsAuthError reports whether err, anywhere in its chain, is MySQL error
// 1045: the password may have rotated. It classifies by number, never by
// message text or SQLSTATE (which the server does not always send).
func IsAuthError(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == ErAccessDenied
}

// IsAccountLocked reports whether err means the server has locked or
// blocked the account (MariaDB 4150/4151, MySQL 3118/3955) or the host
// (1129). Such errors are returned at once: another login would only
// extend the lock.
func IsAccountLocked(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && ledger.IsLockNumber(me.Number)
}

// Defaults of Policy.
const (
	DefaultMaxLogins       = 5
	DefaultTimeout         = 10 * time.Second
	DefaultInitialInterval = 200 * time.Millisecond
	DefaultMaxInterval     = 2 * time.Second
	DefaultMultiplier      = 2
)

// Policy bounds how one Connect recovers from 1045.
type Policy struct {
	// MaxLogins caps the logins one Connect makes, the first included. A
	// server that locks accounts after N failures (MariaDB
	// max_password_errors, MySQL FAILED_LOGIN_ATTEMPTS) is safe when this
	// stays below N. Default 5.
	MaxLogins int
	// Timeout bounds the whole recovery when the caller's context has no
	// earlier deadline (the pool opens connections with a background
	// context). Default 10s.
	Timeout time.Duration
	// InitialInterval, MaxInterval and Multiplier shape the exponential
	// backoff between rounds in which no known version logged in. Defaults
	// 200ms, 2s, 2. Jitter is ±20%.
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Multiplier      float64
}

// DefaultPolicy returns the policy with every default.
func DefaultPolicy() Policy {
	return Policy{
		MaxLogins:       DefaultMaxLogins,
		Timeout:         DefaultTimeout,
		InitialInterval: DefaultInitialInterval,
		MaxInterval:     DefaultMaxInterval,
		Multiplier:      DefaultMultiplier,
	}
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy()
	if p.MaxLogins <= 0 {
		p.MaxLogins = d.MaxLogins
	}
	if p.Timeout <= 0 {
		p.Timeout = d.Timeout
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = d.InitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = d.MaxInterval
	}
	if p.Multiplier < 1 {
		p.Multiplier = d.Multiplier
	}
	return p
}

// NewBackOff returns a fresh exponential backoff following p. It never
// stops by itself: the caller's context (bounded by Timeout) and MaxLogins
// end the retry.
func (p Policy) NewBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.InitialInterval),
		backoff.WithMaxInterval(p.MaxInterval),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithRandomizationFactor(0.2),
		backoff.WithMaxElapsedTime(0),
	)
}
