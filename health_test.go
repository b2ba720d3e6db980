package rotatingmysql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func TestHealthCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	noSecret := func(t *testing.T, h rotatingmysql.Health, passwords ...string) {
		t.Helper()
		out := fmt.Sprintf("%v %+v %#v", h, h, h)
		for _, pw := range passwords {
			if strings.Contains(out, pw) {
				t.Fatalf("health value shows a password: %s", out)
			}
		}
	}

	t.Run("healthy, then through a rotation window", func(t *testing.T) {
		b := newBed(t, "health-Initial-pw1")
		c, _ := openConnectorDB(t, b)
		v1, _ := stagePassword(t, b, rotatingmysqltest.StageCurrent)
		h := c.HealthCheck(ctx)
		if !h.Healthy || h.Step != "" || h.Err != nil || h.VersionID != v1 || h.Stage != credsource.Current || h.SecretID != b.arn {
			t.Fatalf("health %+v", h)
		}
		if !strings.HasPrefix(h.String(), "healthy: ") {
			t.Errorf("String() = %q", h.String())
		}
		var doc map[string]any
		if js, err := json.Marshal(h); err != nil || json.Unmarshal(js, &doc) != nil || doc["healthy"] != true || doc["version_id"] != v1 || doc["error"] != nil {
			t.Errorf("JSON %s, %v", js, err)
		}
		if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx)); err != nil {
			t.Fatal(err)
		}
		v2, pw2 := stagePassword(t, b, rotatingmysqltest.StagePending)
		h = c.HealthCheck(ctx)
		if !h.Healthy || h.VersionID != v2 || h.Stage != credsource.Pending {
			t.Fatalf("in the rotation window: %v", h)
		}
		noSecret(t, h, b.password, pw2)
		if s := c.Stats(); s.AuthRefused != 1 || s.Recovered != 1 {
			t.Errorf("the check should have recovered from one 1045: %+v", s)
		}
	})

	t.Run("fetch fails", func(t *testing.T) {
		b := newBed(t, "health-fetch-pw")
		if err := b.sm.SetDown(true); err != nil {
			t.Fatal(err)
		}
		defer b.sm.SetDown(false)
		c, _ := openConnectorDB(t, b)
		h := c.HealthCheck(ctx)
		if h.Healthy || h.Step != rotatingmysql.HealthFetch || !errors.Is(h.Err, credsource.ErrUnavailable) {
			t.Fatalf("health %v, want a fetch failure wrapping ErrUnavailable", h)
		}
		if s := h.String(); !strings.HasPrefix(s, "unhealthy: fetch failed") || !containsAll(s, b.arn, "AWSCURRENT") {
			t.Errorf("String() = %q: want the step, the secret and the stage", s)
		}
	})

	t.Run("login refused everywhere", func(t *testing.T) {
		b := newBed(t, "health-real-pw")
		if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "health-wrong-pw", b.db), nil); err != nil {
			t.Fatal(err)
		}
		c, _ := openConnectorDB(t, b, rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: 500 * time.Millisecond}))
		h := c.HealthCheck(ctx)
		var ce *rotatingmysql.ConnectError
		var me *mysql.MySQLError
		if h.Healthy || h.Step != rotatingmysql.HealthConnect || !errors.As(h.Err, &ce) || !errors.As(h.Err, &me) || me.Number != 1045 {
			t.Fatalf("health %v, want a connect failure with a ConnectError and the server's 1045", h)
		}
		noSecret(t, h, b.password, "health-wrong-pw")
		var doc map[string]any
		if js, err := json.Marshal(h); err != nil || json.Unmarshal(js, &doc) != nil || doc["healthy"] != false || doc["step"] != "connect" ||
			!strings.Contains(fmt.Sprint(doc["error"]), "1045") || strings.Contains(string(js), "health-wrong-pw") {
			t.Errorf("JSON %s, %v", js, err)
		}
	})

	t.Run("database down", func(t *testing.T) {
		b := newBed(t, "health-down-pw")
		if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON("127.0.0.1", 1, b.user, b.password, b.db), nil); err != nil {
			t.Fatal(err)
		}
		c, _ := openConnectorDB(t, b)
		h := c.HealthCheck(ctx)
		var me *mysql.MySQLError
		if h.Healthy || h.Step != rotatingmysql.HealthConnect || h.Err == nil || errors.As(h.Err, &me) {
			t.Fatalf("health %v, want a network error at connect", h)
		}
	})

	t.Run("bounded by the context", func(t *testing.T) {
		b := newBed(t, "health-slow-pw")
		b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: 5 * time.Second})
		c, _ := openConnectorDB(t, b)
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		h := c.HealthCheck(cctx)
		if h.Healthy || h.Step != rotatingmysql.HealthFetch || !errors.Is(h.Err, context.DeadlineExceeded) {
			t.Fatalf("health %v, want the context's deadline at fetch", h)
		}
	})
}
