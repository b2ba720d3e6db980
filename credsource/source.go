// Package credsource fetches database credentials for rotatingmysql: the
// Source interface, the sources themselves (one file each) and the Cache
// that stands in front of any of them.
//
// A Source returns one version of a secret, chosen by staging label
// (AWSCURRENT, AWSPENDING). The Cache keeps the versions it has seen for a
// TTL, lets one fetch per stage run at a time, and serves the last good value
// when the source fails, so an outage of the source does not break new
// connections while the password has not changed.
package credsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Stage is a Secrets Manager staging label.
type Stage string

// The staging labels that managed rotation uses.
const (
	// Current labels the version applications should use.
	Current Stage = "AWSCURRENT"
	// Pending labels the version a rotation is installing. Between the
	// rotation's setSecret and finishSecret steps it is the only version
	// the database accepts.
	Pending Stage = "AWSPENDING"
	// Previous labels the version that was current before the last rotation.
	Previous Stage = "AWSPREVIOUS"
)

// Sentinel errors that sources wrap, so callers can branch with errors.Is.
var (
	// ErrNotFound means the source answered that the secret, or the version
	// with the requested stage, does not exist. It is an answer, not a fault:
	// the cache does not serve a stale value over it.
	ErrNotFound = errors.New("secret or version not found")

	// ErrUnavailable means the source could not be reached (connection
	// refused, DNS failure): a chain of sources moves on to the next one.
	ErrUnavailable = errors.New("credential source unavailable")

	// ErrNoStages means the source keeps a single version and has no
	// staging labels (environment variable, mounted file): asking it for
	// AWSPENDING finds nothing.
	ErrNoStages = errors.New("source has no staging labels")
)

// Request says which version a Source should return.
type Request struct {
	// Stage is the staging label of the wanted version; empty means Current.
	Stage Stage
	// Refresh asks the source to bypass any cache of its own (the agent's
	// refreshNow=true), because the caller has evidence that what it holds
	// is out of date.
	Refresh bool
}

// Source fetches one version of one secret. Implementations must be safe for
// concurrent use; the Cache calls Fetch at most once at a time per stage.
//
// A Source that keeps resources (idle HTTP connections, files) may also
// implement io.Closer; the connector closes it with the sql.DB.
type Source interface {
	Fetch(ctx context.Context, req Request) (*Secret, error)
}

// Secret is one fetched version of a secret.
type Secret struct {
	// ID is the secret id the source was asked for (name, ARN, variable
	// name or path).
	ID string
	// ARN and Name are the secret's identity as the service reports it,
	// when the source knows them.
	ARN, Name string
	// VersionID identifies the version; empty for sources without versions.
	VersionID string
	// Stages are the staging labels on the version when it was fetched.
	Stages []string
	// CreatedDate is when the version was created, when known.
	CreatedDate time.Time
	// Source names the source that returned the version (for logs and
	// stats): "secretsmanager", "agent", "env", "file", or a custom name.
	Source string
	// Creds are the database credentials the version holds.
	Creds Credentials
	// Region is the AWS region that answered, for sources that know it
	// (secretsmanager: the secret's own region or a replica's).
	Region string
	// RefreshBy, when set, is when a cache refreshes the version at the
	// latest, before its TTL if need be: an IAM token is renewed ahead of
	// the expiry of the AWS credentials that signed it.
	RefreshBy time.Time
	// Expires, when set, is when the version stops being usable (an IAM
	// token past its lifetime or its signing credentials' expiry): a cache
	// does not serve it from memory after that, it fetches.
	Expires time.Time
}

// usableAt reports whether s may still be served at now: it has no
// Expires, or Expires is later.
func (s *Secret) usableAt(now time.Time) bool { return s.Expires.IsZero() || now.Before(s.Expires) }

// Credentials are the database login fields of one secret version, as the
// RDS secret JSON holds them. Formatting a Credentials value with any fmt
// verb never prints the password.
type Credentials struct {
	Engine   string
	Host     string // empty in RDS-managed (rds!...) secrets
	Port     int    // 0 when the secret has none
	Username string
	Password string
	DBName   string
}

// String returns the credentials without the password. The engine is
// printed only when it is a known engine name: a secret read with custom
// keys could hold anything under "engine".
func (c Credentials) String() string {
	engine := c.Engine
	if engine != "" && !KnownEngine(engine) {
		engine = "[not shown]"
	}
	return fmt.Sprintf("{Engine:%s Host:%s Port:%d Username:%s Password:[redacted] DBName:%s}",
		engine, c.Host, c.Port, c.Username, c.DBName)
}

// KnownEngine reports whether engine is an engine name RDS secrets carry
// for MySQL-compatible databases.
func KnownEngine(engine string) bool {
	switch engine {
	case "mysql", "mariadb", "aurora", "aurora-mysql":
		return true
	}
	return false
}

// GoString is String, so %#v redacts too.
func (c Credentials) GoString() string { return "credsource.Credentials" + c.String() }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// %x, %d ...) prints the redacted form.
func (c Credentials) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// HasStage reports whether the version carried the staging label s when it
// was fetched.
func (s *Secret) HasStage(st Stage) bool {
	for _, l := range s.Stages {
		if l == string(st) {
			return true
		}
	}
	return false
}
