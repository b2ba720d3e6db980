package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

const agentToken = "sources-test-agent-token-7f3a"

// startAgent starts a fake Secrets Manager Agent serving store and points
// the environment at it as a user's would be: its port in
// PARAMETERS_SECRETS_EXTENSION_HTTP_PORT and the token in AWS_TOKEN.
func startAgent(t *testing.T, store *rotatingmysqltest.Store) *rotatingmysqltest.Agent {
	t.Helper()
	ag, err := rotatingmysqltest.NewAgent(store, agentToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Close() })
	for k, v := range ag.Env() {
		t.Setenv(k, v)
	}
	return ag
}

// openDSNNoAWS opens dsn with sql.Open, as an application does, without the
// emulator's AWS environment.
func openDSNNoAWS(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("rotatingmysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkAgentRequests checks that every request the agent received carried
// the token, asked for a secret, and held only parameters the agent knows.
// It returns how many asked for refreshNow=true.
func checkAgentRequests(t *testing.T, ag *rotatingmysqltest.Agent) (refreshes int) {
	t.Helper()
	for i, r := range ag.Log() {
		if !r.Token || r.Forwarded || r.Method != "GET" || r.Path != "/secretsmanager/get" || len(r.UnknownParams()) > 0 {
			t.Errorf("agent request %d: %+v", i, r)
		}
		if r.Params.Get("refreshNow") == "true" {
			refreshes++
		}
	}
	return refreshes
}

// TestAgentSourceRotationUnderLoad: a single-user rotation behind the
// agent while 16 workers dial, and one with the agent killed just before
// setSecret and restarted 500 ms later: at most 15 agent requests, no API
// call, at most 20 failed logins by the driver. The source is configured
// in Go (endpoint and WithAgentToken); TestChainAgentNotFoundEndsChain and
// TestAgentSourceEndpoint read the agent's port and token from the
// environment.
func TestAgentSourceRotationUnderLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		restart bool // kill the agent just before setSecret, restart it 500ms after
	}{
		{name: "single user"},
		{name: "agent restarted in the window", restart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "agent-Initial-Pw-1")
			ag := newAgent(t, b.sm.Store(), agentToken)
			db := b.open(withAgent(ag))
			db.SetMaxIdleConns(0)
			ping(t, db)
			denied0 := b.deniedLogins()

			l := startLoad(db, 16)
			time.Sleep(300 * time.Millisecond)
			ctx := context.Background()
			rot := b.rot
			var err error
			if tc.restart {
				err = rot.CreateSecret(ctx)
				if err == nil {
					err = ag.Stop()
				}
				if err == nil {
					err = rot.SetSecret(ctx)
				}
				time.Sleep(500 * time.Millisecond)
				err = errors.Join(err, ag.Start())
				if err == nil {
					err = rot.TestSecret(ctx)
				}
				time.Sleep(time.Second)
				if err == nil {
					err = rot.FinishSecret(ctx)
				}
			} else {
				rot.Pause = time.Second
				err = rot.Rotate(ctx)
			}
			time.Sleep(500 * time.Millisecond) // on the new AWSCURRENT
			l.stop(t)
			if err != nil {
				t.Fatal(err)
			}
			refreshes := checkAgentRequests(t, ag)
			// The rotation's setSecret step first tries AWSPENDING, as the AWS
			// template does: one failed login that is not the driver's.
			requests, denied := ag.Requests(), b.deniedLogins()-denied0-1
			t.Logf("agent requests %d (refreshNow=true %d, agent store reads %d), failed logins by the driver %d, API calls %d",
				requests, refreshes, ag.StoreReads(), denied, b.apiCalls())
			if requests > 15 {
				t.Errorf("agent requests %d, want at most 15", requests)
			}
			// The first refresh after 1045 goes through the agent's cache
			// (behind a shared agent, one fetch serves every process);
			// refreshNow=true follows only when that answer offered
			// nothing that logs in. Either way the agent must have read
			// the new version from the service.
			if ag.StoreReads() < 2 {
				t.Errorf("the agent read the store %d times: the new version never reached the driver", ag.StoreReads())
			}
			if n := b.apiCalls(); n != 0 {
				t.Errorf("source=agent made %d Secrets Manager API calls", n)
			}
			if denied > 20 {
				t.Errorf("failed logins on the server %d, want at most 20", denied)
			}
		})
	}
}

func TestAgentSourceNoToken(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "agent-NoToken-Pw-1")
	ag := startAgent(t, b.sm.Store())
	for _, name := range credsource.AgentTokenEnv {
		t.Setenv(name, "")
	}
	var db *sql.DB
	if _, err := os.Stat(credsource.DefaultAgentTokenFile); err != nil {
		db = b.openDSN(b.arn + "?source=agent")
	} else {
		// This machine has a real agent's token file, which the DSN would
		// use: point the source at a file that does not exist instead.
		t.Logf("%s exists: testing through the Go API", credsource.DefaultAgentTokenFile)
		db = b.open(rotatingmysql.WithSource(&credsource.Agent{SecretID: b.arn, TokenFile: filepath.Join(t.TempDir(), "absent")}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := db.PingContext(ctx)
	if err == nil {
		t.Fatal("connected without an agent token")
	}
	t.Logf("error: %v", err)
	for _, want := range append(credsource.AgentTokenEnv, "file://PATH", "readable") {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if n := ag.Requests(); n != 0 {
		t.Errorf("%d requests sent without a token", n)
	}
}

func TestAgentSourceTokenRefused(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "agent-BadToken-Pw-1")
	ag := startAgent(t, b.sm.Store())
	t.Setenv("AWS_TOKEN", "not-the-agent-token-42")
	err := b.openDSN(b.arn + "?source=agent").Ping()
	if err == nil || !strings.Contains(err.Error(), "refused the token from AWS_TOKEN") {
		t.Fatalf("error %v, want one saying the token from AWS_TOKEN was refused", err)
	}
	if strings.Contains(err.Error(), "not-the-agent-token-42") || strings.Contains(err.Error(), agentToken) {
		t.Fatalf("error prints a token: %v", err)
	}
	if log := ag.Log(); len(log) == 0 || log[0].Status != 403 || !log[0].TokenHeader {
		t.Fatalf("agent log %+v", log)
	}
}

func TestAgentSourceEndpoint(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	_, err := sql.Open("rotatingmysql", "app/db?source=agent&agentEndpoint=http://192.0.2.10:2773")
	if !errors.Is(err, rotatingmysql.ErrInvalidDSN) || !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), "allowRemoteAgent=true") {
		t.Fatalf("remote endpoint: %v", err)
	}
	db, err := sql.Open("rotatingmysql", "app/db?source=agent&agentEndpoint=http://192.0.2.10:2773&allowRemoteAgent=true")
	if err != nil {
		t.Fatalf("opt-out: %v", err)
	}
	db.Close()
	t.Setenv(credsource.AgentPortEnv, "not-a-port")
	if _, err := sql.Open("rotatingmysql", "app/db?source=agent"); !errors.Is(err, rotatingmysql.ErrInvalidDSN) || !strings.Contains(err.Error(), credsource.AgentPortEnv) {
		t.Fatalf("bad port variable: %v", err)
	}
	if _, err := sql.Open("rotatingmysql", "app/db?source=agent&allowRemoteAgent=maybe"); !errors.Is(err, rotatingmysql.ErrInvalidDSN) {
		t.Fatalf("bad allowRemoteAgent: %v", err)
	}

	// The Go options, and an explicit endpoint winning over the variable.
	b := newBed(t, "agent-Endpoint-Pw-1")
	ag, err := rotatingmysqltest.NewAgent(b.sm.Store(), agentToken)
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	t.Setenv("AWS_TOKEN", agentToken)
	ping(t, b.open(rotatingmysql.WithAgentEndpoint(ag.URL()), func(c *rotatingmysql.Config) error { c.Source = "agent"; return nil }))
	if ag.Requests() != 1 {
		t.Fatalf("agent requests %d, want 1", ag.Requests())
	}
}

func TestEnvSourceDSN(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "env-Initial-Pw-1")
	t.Setenv("DB_SECRET", rotatingmysqltest.SecretJSON(b.host, b.port, b.user, b.password, b.db))
	db := openDSNNoAWS(t, "DB_SECRET?source=env")
	db.SetMaxIdleConns(0)
	ping(t, db)
	// The variable and the password change (a process may set it itself):
	// the 1045 re-reads the variable.
	if err := b.srv.SetPassword(context.Background(), b.user, "env-New-Pw-2"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DB_SECRET", rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "env-New-Pw-2", b.db))
	ping(t, db)
	if n := b.apiCalls(); n != 0 {
		t.Errorf("source=env made %d API calls", n)
	}

	// Closed, the database's cache goes with it (it would be shared with
	// the next one opened on the same variable otherwise).
	db.Close()
	t.Setenv("DB_SECRET", "")
	err := openDSNNoAWS(t, "DB_SECRET?source=env").Ping()
	if err == nil || !strings.Contains(err.Error(), "environment variable DB_SECRET is empty") {
		t.Fatalf("empty variable: %v", err)
	}
	// An "arn:"-looking name is not checked as an ARN for env.
	if _, err := rotatingmysql.ParseDSN("arn_like?source=env"); err != nil {
		t.Fatal(err)
	}
}

// csiMount lays out a directory as the Secrets Store CSI driver does: the
// file is a symlink into ..data, a symlink to a timestamped directory that
// each update replaces with an atomic rename.
type csiMount struct {
	t   *testing.T
	dir string
	n   int
}

func (m *csiMount) path() string { return filepath.Join(m.dir, "secret.json") }

func (m *csiMount) update(doc string) {
	m.t.Helper()
	m.n++
	ts := fmt.Sprintf("..2025_01_01_00_00_%02d.%09d", m.n, m.n)
	must := func(err error) {
		if err != nil {
			m.t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(m.dir, ts), 0o755))
	must(os.WriteFile(filepath.Join(m.dir, ts, "secret.json"), []byte(doc), 0o644))
	tmp := filepath.Join(m.dir, "..data_tmp")
	must(os.Symlink(ts, tmp))
	must(os.Rename(tmp, filepath.Join(m.dir, "..data")))
	if _, err := os.Lstat(m.path()); os.IsNotExist(err) {
		must(os.Symlink(filepath.Join("..data", "secret.json"), m.path()))
	}
}

func TestFileSourceRotationUnderLoad(t *testing.T) {
	t.Parallel()
	b := newBed(t, "file-Initial-Pw-1")
	m := &csiMount{t: t, dir: t.TempDir()}
	m.update(rotatingmysqltest.SecretJSON(b.host, b.port, b.user, b.password, b.db))
	db := openDSNNoAWS(t, m.path()+"?source=file")
	db.SetMaxIdleConns(0)
	ping(t, db)
	denied0 := b.deniedLogins()
	ctx := context.Background()
	setPassword := func(pw string) {
		t.Helper()
		if err := b.srv.SetPassword(ctx, b.user, pw); err != nil {
			t.Fatal(err)
		}
	}

	l := startLoad(db, 16)
	time.Sleep(300 * time.Millisecond)
	// The database first, the file half a second later (the CSI driver
	// syncs on a poll interval).
	setPassword("file-Second-Pw-2")
	time.Sleep(500 * time.Millisecond)
	m.update(rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "file-Second-Pw-2", b.db))
	time.Sleep(time.Second)
	// The file first, then the database.
	m.update(rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "file-Third-Pw-3", b.db))
	time.Sleep(300 * time.Millisecond)
	setPassword("file-Third-Pw-3")
	time.Sleep(time.Second)
	l.stop(t)

	denied := b.deniedLogins() - denied0
	t.Logf("failed logins during two password changes: %d", denied)
	if denied > 40 {
		t.Errorf("failed logins %d, want at most 40", denied)
	}
	if n := b.apiCalls(); n != 0 {
		t.Errorf("source=file made %d API calls", n)
	}
	// A missing file is a clear error naming it.
	missing := filepath.Join(t.TempDir(), "absent.json")
	if err := openDSNNoAWS(t, missing+"?source=file").Ping(); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestChainAgentDownFallsThroughToAPI(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "chain-Pw-1")
	ag := startAgent(t, b.sm.Store())
	if err := ag.Stop(); err != nil { // nothing listens on its port
		t.Fatal(err)
	}
	db := b.openDSN(b.arn + "?source=agent,secretsmanager")
	ping(t, db)
	if n := b.apiCalls(); n < 1 {
		t.Fatalf("API calls %d: the chain did not fall through", n)
	}
	if n := ag.Requests(); n != 0 {
		t.Fatalf("stopped agent saw %d requests", n)
	}
}

func TestChainAgentNotFoundEndsChain(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "chain-Pw-2")
	// An agent that does not hold the secret answers ResourceNotFound: an
	// answer, so the chain does not ask the API.
	startAgent(t, rotatingmysqltest.NewStore())
	err := b.openDSN(b.arn + "?source=agent,secretsmanager").Ping()
	if !errors.Is(err, credsource.ErrNotFound) {
		t.Fatalf("error %v, want ErrNotFound", err)
	}
	if n := b.apiCalls(); n != 0 {
		t.Fatalf("API calls %d after the agent answered not found", n)
	}
}
