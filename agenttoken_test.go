package rotatingmysql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// withAgent points a Config at the fake agent ag through the Go API alone:
// source=agent, the agent's endpoint and its token (WithAgentToken). No
// variable is read or set, so a test that uses it can run in parallel.
func withAgent(ag *rotatingmysqltest.Agent) rotatingmysql.Option {
	return func(c *rotatingmysql.Config) error {
		c.Source = "agent"
		return c.Apply(rotatingmysql.WithAgentEndpoint(ag.URL()), rotatingmysql.WithAgentToken(ag.Token()))
	}
}

// newAgent starts a fake agent serving store with token, closed when the
// test ends.
func newAgent(t *testing.T, store *rotatingmysqltest.Store, token string) *rotatingmysqltest.Agent {
	t.Helper()
	ag, err := rotatingmysqltest.NewAgent(store, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Close() })
	return ag
}

// TestAgentTokenOption: WithAgentToken gives the agent source its token in
// Go. The agent accepts it (every request carries the right token) whatever
// the process's AWS_TOKEN holds; a wrong one is refused with a 403 that
// says it came from Agent.Token, and neither the error, Stats, the health
// check nor the debug logs (text and JSON) hold it.
func TestAgentTokenOption(t *testing.T) {
	t.Parallel()
	b := newBed(t, "agent-Option-Pw-1")
	const token = "option-Agent-Token-Zq81Hd5Lw"

	t.Run("right token", func(t *testing.T) {
		t.Parallel()
		ag := newAgent(t, b.sm.Store(), token)
		ping(t, b.open(withAgent(ag), rotatingmysql.WithIsolateCache(true)))
		checkAgentRequests(t, ag) // each carried the right token
		if ag.Requests() == 0 {
			t.Fatal("the agent saw no request")
		}
		if n := b.apiCalls(); n != 0 {
			t.Errorf("source=agent made %d Secrets Manager API calls", n)
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		t.Parallel()
		const wrong = "wrong-Agent-Token-Pp03Vn7Ks"
		other := newAgent(t, b.sm.Store(), token)
		var text, js logBuffer
		lo := &slog.HandlerOptions{Level: slog.LevelDebug}
		c, db := b.openWithConnector(withAgent(other), rotatingmysql.WithAgentToken(wrong),
			rotatingmysql.WithLogger(slog.New(teeHandler(slog.NewTextHandler(&text, lo), slog.NewJSONHandler(&js, lo)))),
			rotatingmysql.WithIsolateCache(true))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pingErr := db.PingContext(ctx)
		var ae *credsource.AgentError
		if !errors.As(pingErr, &ae) || ae.StatusCode != 403 || ae.TokenFrom != "Agent.Token" {
			t.Fatalf("Ping: %v, want a 403 *credsource.AgentError naming Agent.Token", pingErr)
		}
		if !strings.Contains(pingErr.Error(), "refused the token from Agent.Token") {
			t.Errorf("Ping error %q does not say the token from Agent.Token was refused", pingErr)
		}
		if log := other.Log(); len(log) == 0 || !log[0].TokenHeader || log[0].Token || log[0].Status != 403 {
			t.Errorf("agent log %+v, want a request with a wrong token, refused", log)
		}
		l := newLeakCheck(t, wrong, token)
		l.err("Ping", pingErr)
		l.err("Stats().LastError", c.Stats().LastError)
		l.err("Health.Err", c.HealthCheck(context.Background()).Err)
		l.add("text log", text.String())
		l.add("JSON log", js.String())
		l.check()
	})
}

// TestAgentTokenNeverPrinted: a Config and a Connector that hold an agent
// token print without it under every verb, as a pointer and as a value, in
// JSON and through slog's text and JSON handlers; the token travels only to
// the agent.
func TestAgentTokenNeverPrinted(t *testing.T) {
	t.Parallel()
	const token = "print-Agent-Token-Rt62Gx9Mb"
	cfg := rotatingmysql.NewConfig("app/db")
	if err := cfg.Apply(rotatingmysql.WithAgentToken(token), rotatingmysql.WithAgentEndpoint("http://127.0.0.1:2773"),
		func(c *rotatingmysql.Config) error {
			c.Source = "agent,secretsmanager"
			c.Region = "us-east-1"
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if string(cfg.AgentToken) != token {
		t.Fatalf("AgentToken not set by WithAgentToken")
	}
	conn, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	l := newLeakCheck(t, token)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		l.add("*Config "+verb, fmt.Sprintf(verb, cfg))
		l.add("Config "+verb, fmt.Sprintf(verb, *cfg))
		l.add("*Connector "+verb, fmt.Sprintf(verb, conn))
		l.add("AgentToken "+verb, fmt.Sprintf(verb, cfg.AgentToken))
	}
	js, err := json.Marshal(struct {
		Token credsource.Token
		Cfg   *rotatingmysql.Config
	}{cfg.AgentToken, cfg})
	if err == nil { // a Config holds funcs and interfaces; JSON may refuse it
		l.add("JSON", string(js))
	} else if js, err = json.Marshal(cfg.AgentToken); err != nil {
		t.Fatal(err)
	} else {
		l.add("JSON of the token", string(js))
	}
	var text, jsl logBuffer
	logger := slog.New(teeHandler(slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&jsl, nil)))
	logger.Info("config", "cfg", cfg, "value", *cfg, "connector", conn, "token", cfg.AgentToken)
	l.add("text log", text.String())
	l.add("JSON log", jsl.String())
	l.check()
	if got := fmt.Sprint(cfg.AgentToken); got != credsource.Redacted {
		t.Errorf("AgentToken prints %q, want %q", got, credsource.Redacted)
	}
}

// TestAgentTokenOptionRefused: WithAgentToken refuses an empty token and
// one with a control character, with an error that does not quote it; a
// token with a source list that has no agent is a mistake, refused too.
func TestAgentTokenOptionRefused(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts []rotatingmysql.Option
		want string
	}{
		"empty":             {[]rotatingmysql.Option{rotatingmysql.WithAgentToken(" \n")}, "agent token is empty"},
		"line break inside": {[]rotatingmysql.Option{rotatingmysql.WithAgentToken("refused-Token-Ab12\nCd34")}, "control character"},
		"field with a NUL": {[]rotatingmysql.Option{func(c *rotatingmysql.Config) error {
			c.AgentToken = "refused-Token-Ab12\x00Cd34"
			return nil
		}}, "control character"},
		"no agent in the source list": {[]rotatingmysql.Option{rotatingmysql.WithAgentToken("refused-Token-Ab12Cd34")}, "apply to source=agent"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := rotatingmysql.NewConfig("app/db")
			cfg.Region = "us-east-1"
			err := cfg.Apply(tc.opts...)
			if err == nil {
				_, err = rotatingmysql.NewConnector(cfg)
			}
			if !errors.Is(err, rotatingmysql.ErrInvalidDSN) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalidDSN saying %q", err, tc.want)
			}
			for _, part := range []string{"refused-Token", "Ab12", "Cd34"} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("error quotes the token: %v", err)
				}
			}
		})
	}
}
