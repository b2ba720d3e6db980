package rotatingmysql

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/retry"
)

// ErrInvalidDSN is wrapped by every error ParseDSN and sql.Open report for a
// malformed DSN or Config.
var ErrInvalidDSN = errors.New("rotatingmysql: invalid DSN")

// ErrNoUsableCredentials is wrapped by ConnectError when every version the
// sources offered had already been refused by the server and no new one
// appeared before the deadline.
var ErrNoUsableCredentials = errors.New("rotatingmysql: no version of the secret logged in")

// ErrRetryTimeout is the cause a ConnectError (or a fetch error) wraps when
// the driver's own bound, retryTimeout, ended the wait while the caller's
// context had not ended. errors.Is(err, context.DeadlineExceeded) is true
// only when the caller's deadline passed.
var ErrRetryTimeout = errors.New("rotatingmysql: retryTimeout reached")

// ErrAccountLocked is the cause a ConnectError wraps when the server has
// locked or blocked the account (MariaDB 4150/4151, MySQL 3118/3955, host
// blocked 1129): the driver holds every login of the account until the
// hold ends, then lets one connection probe it. errors.As on the
// ConnectError finds the server's *mysql.MySQLError.
var ErrAccountLocked = errors.New("rotatingmysql: the server has locked or blocked the account")

// ErrLoginTimeout is wrapped by LoginTimeoutError.
var ErrLoginTimeout = errors.New("rotatingmysql: loginTimeout reached")

// LoginTimeoutError is returned when a login (TCP connect and handshake)
// did not finish within loginTimeout and the caller's context had no
// deadline of its own. Nothing is concluded about the password: the server
// never answered.
type LoginTimeoutError struct {
	SecretID string
	Addr     string // the server's host:port
	Timeout  time.Duration
}

func (e *LoginTimeoutError) Error() string {
	return fmt.Sprintf("rotatingmysql: secret %q: login to %s did not finish within loginTimeout %v (the server did not complete the handshake; an Aurora Serverless instance resuming from pause takes about 15 s)",
		e.SecretID, e.Addr, e.Timeout)
}

// Unwrap returns ErrLoginTimeout.
func (e *LoginTimeoutError) Unwrap() error { return ErrLoginTimeout }

// Attempt is one login a Connect made, for ConnectError.
type Attempt struct {
	Stage     credsource.Stage // the label the source gave the version ("" when none)
	VersionID string
	Username  string
	Err       error // the server's error, typically *mysql.MySQLError 1045
}

// ConnectError is returned when a Connect gives up after the server refused
// the credentials (MySQL error 1045). It says what was tried and wraps the
// last server error (errors.As finds *mysql.MySQLError) and, when the wait
// ended because of it, the context's error. It never holds a password.
type ConnectError struct {
	SecretID string
	Attempts []Attempt
	// Err is the last *mysql.MySQLError (1045), or ErrNoUsableCredentials
	// wrapping it when no login was tried in this Connect.
	Err error
	// Cause is the reason the retry stopped: the caller's context's error,
	// ErrRetryTimeout, the login cap, or nil when every version was held
	// back with no change due before the deadline.
	Cause error
	// Hint says what to check, for sources whose refusals have known
	// causes (source=iam: the IAM policy, the region, the clock); "" if
	// none.
	Hint string
}

func (e *ConnectError) Error() string {
	var b strings.Builder
	var what string
	switch {
	case errors.Is(e.Cause, ErrAccountLocked) || retry.IsAccountLocked(e.Err):
		what = "account locked or blocked by the server, no login tried until its hold ends"
	case e.refused():
		what = "login refused"
	default:
		what = "not logged in"
	}
	fmt.Fprintf(&b, "rotatingmysql: secret %q: %s", e.SecretID, what)
	if len(e.Attempts) > 0 {
		fmt.Fprintf(&b, " after %d attempt", len(e.Attempts))
		if len(e.Attempts) > 1 {
			b.WriteByte('s')
		}
		b.WriteString(" (")
		for i, a := range e.Attempts {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s", a.Stage)
			if a.VersionID != "" {
				fmt.Fprintf(&b, " version %s", a.VersionID)
			}
			if a.Username != "" {
				fmt.Fprintf(&b, " user %s", a.Username)
			}
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, "; stopped: %v", e.Cause)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

// refused reports whether the server refused a login (1045) that the
// error reports.
func (e *ConnectError) refused() bool {
	return len(e.Attempts) > 0 || retry.IsAuthError(e.Err)
}

// Unwrap returns the last server error and the cause, for errors.Is and
// errors.As.
func (e *ConnectError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}
