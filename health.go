package rotatingmysql

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// healthTimeout bounds a HealthCheck whose context has no earlier
// deadline: the fetch and the recovery from 1045 are bounded already, and
// a health endpoint must answer even when the database hangs.
const healthTimeout = 15 * time.Second

// HealthStep names the step of a health check.
type HealthStep string

// The steps of a health check, in order.
const (
	// HealthFetch reads AWSCURRENT through the connector's cache.
	HealthFetch HealthStep = "fetch"
	// HealthConnect opens a new connection, recovering from 1045 as
	// Connect does.
	HealthConnect HealthStep = "connect"
	// HealthQuery runs SELECT 1 on it.
	HealthQuery HealthStep = "query"
)

// Health is the outcome of Connector.HealthCheck. It never holds a
// password.
type Health struct {
	// Healthy reports whether every step succeeded.
	Healthy bool
	// Step is the step that failed; empty when healthy.
	Step HealthStep
	// Err is why that step failed: the source's error, a ConnectError
	// (errors.As finds the server's *mysql.MySQLError), a network error,
	// or the context's error. Its text is redacted (credsource.Redact).
	Err error
	// SecretID is the secret the connector reads.
	SecretID string
	// VersionID and Stage are the version new connections use (see
	// Stats.CurrentVersionID); empty when no login has succeeded yet.
	VersionID string
	Stage     credsource.Stage
	// Took is how long the check took.
	Took time.Duration
}

// String describes the outcome in one line, for logs and health endpoints.
func (h Health) String() string {
	if h.Healthy {
		return fmt.Sprintf("healthy: secret %q version %s (%s), checked in %v", h.SecretID, h.VersionID, h.Stage, h.Took.Round(time.Millisecond))
	}
	return fmt.Sprintf("unhealthy: %s failed after %v: %v", h.Step, h.Took.Round(time.Millisecond), h.Err)
}

// MarshalJSON encodes the outcome for a health endpoint, with the error as
// its message:
//
//	{"healthy":false,"step":"connect","error":"...","secret_id":"arn:...","version_id":"","stage":"","took":"1.2s"}
func (h Health) MarshalJSON() ([]byte, error) {
	var msg string
	if h.Err != nil {
		msg = h.Err.Error()
	}
	return json.Marshal(struct {
		Healthy   bool   `json:"healthy"`
		Step      string `json:"step,omitempty"`
		Error     string `json:"error,omitempty"`
		SecretID  string `json:"secret_id"`
		VersionID string `json:"version_id"`
		Stage     string `json:"stage"`
		Took      string `json:"took"`
	}{h.Healthy, string(h.Step), msg, h.SecretID, h.VersionID, string(h.Stage), h.Took.Round(time.Millisecond).String()})
}

// HealthCheck checks, end to end, that a new connection can be opened now:
// it reads the credentials through the cache (a fetch only when the TTL
// has passed), connects (recovering from 1045 as Connect does), runs
// SELECT 1 and closes the connection. Use it for load-balancer or Lambda
// health endpoints: it tests what sql.DB.Ping may skip, because Ping
// reuses an idle connection opened before the rotation.
//
// It is bounded by ctx and by 15 seconds, whichever ends first.
func (c *Connector) HealthCheck(ctx context.Context) Health {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	h := Health{SecretID: c.cfg.SecretID}
	fail := func(step HealthStep, err error) Health {
		h.Step, h.Err, h.Took = step, credsource.Redact(err), time.Since(start)
		return h
	}
	if _, err := c.sh.cache.Get(ctx, credsource.Current); err != nil {
		return fail(HealthFetch, c.fetchError(credsource.Current, err))
	}
	conn, err := c.Connect(ctx)
	if err != nil {
		return fail(HealthConnect, err)
	}
	err = selectOne(ctx, conn)
	if cerr := conn.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fail(HealthQuery, err)
	}
	s := c.Stats()
	h.Healthy, h.VersionID, h.Stage, h.Took = true, s.CurrentVersionID, s.CurrentStage, time.Since(start)
	return h
}

// selectOne runs SELECT 1 on a driver connection and checks the answer.
func selectOne(ctx context.Context, conn driver.Conn) error {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return fmt.Errorf("rotatingmysql: health check: connection %T cannot run queries", conn)
	}
	rows, err := q.QueryContext(ctx, "SELECT 1", nil)
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if len(dest) != 1 {
		return fmt.Errorf("rotatingmysql: health check: SELECT 1 returned %d columns", len(dest))
	}
	if err := rows.Next(dest); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("rotatingmysql: health check: SELECT 1 returned no row")
		}
		return err
	}
	switch v := dest[0].(type) {
	case int64:
		if v == 1 {
			return nil
		}
	case []byte:
		if string(v) == "1" {
			return nil
		}
	}
	return fmt.Errorf("rotatingmysql: health check: SELECT 1 returned %v", dest[0])
}
