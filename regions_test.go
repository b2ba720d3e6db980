package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// replicaBed is a test's world with a replicated secret: the real MariaDB
// and an application user, Secrets Manager in us-east-1 (the secret's own
// region) replicated to us-west-2 and eu-west-1, and a rotator that writes
// to the primary.
type replicaBed struct {
	t   *testing.T
	r   *rotatingmysqltest.Regions
	arn string
	rot *rotatingmysqltest.Rotator
}

func newReplicaBed(t *testing.T) *replicaBed {
	t.Helper()
	srv := testdb.Require(t)
	const pw = "replica-Pw-0001"
	user, db := srv.TempUser(t, pw)
	r, err := rotatingmysqltest.NewRegions("us-west-2", "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	port, _ := strconv.Atoi(portStr)
	arn, _, err := r.Primary().Store().CreateSecret(testdb.UniqueName("app"), rotatingmysqltest.SecretJSON(host, port, user, pw, db))
	if err != nil {
		t.Fatal(err)
	}
	b := &replicaBed{t: t, r: r, arn: arn, rot: rotatingmysqltest.NewRotator(r.Primary().Store(), arn, srv.Root(), rotatingmysqltest.SingleUser)}
	waitFor(t, "replication", func() bool {
		_, err := r.Region("us-west-2").Store().GetSecretValue(credsource.ReplicaID(arn, "us-west-2"), "", "AWSCURRENT")
		return err == nil
	})
	return b
}

// open opens a pool on the secret's ARN with the two replica regions.
func (b *replicaBed) open(opts ...rotatingmysql.Option) *sql.DB {
	b.t.Helper()
	_, db := openConfig(b.t, rotatingmysql.NewConfig(b.arn), append([]rotatingmysql.Option{
		rotatingmysql.WithAWSConfig(b.r.AWSConfig()), rotatingmysql.WithIsolateCache(true),
		rotatingmysql.WithReplicaRegions("us-west-2", "eu-west-1"),
	}, opts...)...)
	return db
}

func gets(sm *rotatingmysqltest.SecretsManager) int { return sm.Calls("GetSecretValue") }

// TestReplicaColdStart: the secret's own region is down when the pool
// starts (500s, refused connections, a request that hangs): the first
// connection fetches the secret from the first replica and logs in within
// its bound (10 s).
func TestReplicaColdStart(t *testing.T) {
	t.Parallel()
	for _, outage := range rotatingmysqltest.Outages {
		t.Run(string(outage), func(t *testing.T) {
			b := newReplicaBed(t)
			primary := b.r.Primary()
			if err := primary.Break(outage); err != nil {
				t.Fatal(err)
			}
			db := b.open()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := db.PingContext(ctx); err != nil {
				t.Fatalf("cold start with %s in the primary region: %v", outage, err)
			}
			if n := gets(b.r.Region("us-west-2")); n == 0 {
				t.Errorf("us-west-2 was not asked")
			}
			if n := gets(b.r.Region("eu-west-1")); n != 0 {
				t.Errorf("eu-west-1 asked %d times, want 0 (us-west-2 answered)", n)
			}
		})
	}
}

// TestReplicaAbsorbsRotationDuringOutage: the secret's own region answers
// 500 to every read while a rotation runs there (the rotation function
// writes in the primary; the new version reaches the replicas 200 ms
// later): a pool under load (every query a new login) absorbs the
// rotation from the replica, with 0 application errors.
func TestReplicaAbsorbsRotationDuringOutage(t *testing.T) {
	t.Parallel()
	b := newReplicaBed(t)
	b.r.SetReplicationDelay(200 * time.Millisecond)
	db := b.open()
	db.SetMaxIdleConns(0)
	ping(t, db)
	l := startLoad(db, 4)
	defer l.cancel()
	waitFor(t, "queries before the outage", func() bool { return l.queries.Load() >= 20 })
	b.r.Primary().Fail("GetSecretValue", rotatingmysqltest.Fault{Status: 500})
	west := gets(b.r.Region("us-west-2"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.rot.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	after := l.queries.Load()
	waitFor(t, "queries after the rotation", func() bool { return l.queries.Load() >= after+50 })
	l.stop(t)
	if n := gets(b.r.Region("us-west-2")) - west; n == 0 {
		t.Errorf("the replica was not asked during the outage")
	}
	t.Logf("GetSecretValue: us-east-1 %d, us-west-2 %d, eu-west-1 %d", gets(b.r.Primary()), gets(b.r.Region("us-west-2")), gets(b.r.Region("eu-west-1")))
}

// TestReplicaNotForCallerErrors: access denied and not found in the
// secret's own region are the caller's errors: the connection fails with
// them and no replica is asked.
func TestReplicaNotForCallerErrors(t *testing.T) {
	b := newReplicaBed(t)
	b.r.Primary().Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "AccessDeniedException", Status: 400})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.open().PingContext(ctx); !errors.Is(err, credsource.ErrAccessDenied) {
		t.Errorf("access denied: %v, want ErrAccessDenied", err)
	}
	b.r.Primary().ClearFaults()
	_, db := openConfig(t, rotatingmysql.NewConfig(credsource.ReplicaID(b.arn, "us-east-1")+"x"), rotatingmysql.WithAWSConfig(b.r.AWSConfig()),
		rotatingmysql.WithIsolateCache(true), rotatingmysql.WithReplicaRegions("us-west-2", "eu-west-1"))
	if err := db.PingContext(ctx); !errors.Is(err, credsource.ErrNotFound) {
		t.Errorf("not found: %v, want ErrNotFound", err)
	}
	if n := gets(b.r.Region("us-west-2")) + gets(b.r.Region("eu-west-1")); n != 0 {
		t.Errorf("replicas asked %d times, want 0", n)
	}
}

// TestDSNReplicaRegions: replicaRegions= parses into Config.ReplicaRegions,
// and a bad list is refused naming what is wrong.
func TestDSNReplicaRegions(t *testing.T) {
	cfg, err := rotatingmysql.ParseDSN("app/db?replicaRegions=us-west-2,eu-west-1")
	if err != nil || len(cfg.ReplicaRegions) != 2 || cfg.ReplicaRegions[1] != "eu-west-1" {
		t.Fatalf("ParseDSN: %v %v", cfg, err)
	}
	for dsn, want := range map[string]string{
		"app/db?replicaRegions=us-west-2,,eu-west-1":       "empty",
		"app/db?replicaRegions=us-west-2,us-west-2":        "twice",
		"app/db?region=us-west-2&replicaRegions=us-west-2": "own region",
		"app/db?replicaRegions=us-west-2-fips":             "AWS_USE_FIPS_ENDPOINT",
		"APP_SECRET?source=env&replicaRegions=us-west-2":   "source=secretsmanager",
	} {
		_, err := rotatingmysql.ParseDSN(dsn)
		if !errors.Is(err, rotatingmysql.ErrInvalidDSN) || !containsAll(err.Error(), "replicaRegions", want) {
			t.Errorf("ParseDSN(%q) = %v, want ErrInvalidDSN naming replicaRegions and %q", dsn, err, want)
		}
	}
	if _, err := rotatingmysql.ParseDSN("app/db?source=agent,secretsmanager&replicaRegions=us-west-2"); err != nil {
		t.Errorf("agent,secretsmanager with replicas: %v", err)
	}
}

// TestReplicaBehindAgent: source=agent,secretsmanager with replicaRegions:
// the agent is not there (nothing listens on its port), so the chain moves
// on to the API, whose own region is down (500s): the replica answers and
// the connection logs in.
func TestReplicaBehindAgent(t *testing.T) {
	t.Parallel()
	b := newReplicaBed(t)
	b.r.Primary().Fail("GetSecretValue", rotatingmysqltest.Fault{Status: 500})
	cfg, err := rotatingmysql.ParseDSN(b.arn + "?source=agent,secretsmanager&agentEndpoint=http://127.0.0.1:9&replicaRegions=us-west-2,eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	_, db := openConfig(t, cfg, rotatingmysql.WithAWSConfig(b.r.AWSConfig()), rotatingmysql.WithIsolateCache(true),
		rotatingmysql.WithAgentToken("agent-token-unused"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("agent absent, primary down: %v", err)
	}
	if gets(b.r.Region("us-west-2")) == 0 {
		t.Errorf("the replica was not asked")
	}
}
