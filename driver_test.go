package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func TestOpenValidatesDSNWithoutIO(t *testing.T) {
	db, err := sql.Open("rotatingmysql", "arn:aws:ssm:us-east-1:1:parameter/x")
	if err == nil {
		db.Close()
		t.Fatal("sql.Open accepted a bad DSN")
	}
	if !errors.Is(err, rotatingmysql.ErrInvalidDSN) {
		t.Fatalf("error %v does not wrap ErrInvalidDSN", err)
	}
	// A good DSN opens without touching the network: no endpoint is
	// configured, and nothing fails until the first connection.
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:1")
	db, err = sql.Open("rotatingmysql", "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf?parseTime=true")
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	db.Close()
}

func TestConnectAndQueryPathIsMySQLDriver(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "plain-password-1")
	db := b.openDSN(b.arn + "?parseTime=true")
	ping(t, db)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		if got := fmt.Sprintf("%T", dc); got != "*mysql.mysqlConn" {
			return fmt.Errorf("connection handed to database/sql is %s, want go-sql-driver/mysql's own *mysql.mysqlConn", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Query errors reach the application unwrapped (GORM's TranslateError
	// type-asserts *mysql.MySQLError).
	_, err = conn.ExecContext(context.Background(), "SELECT * FROM no_such_table")
	if _, ok := err.(*mysql.MySQLError); !ok {
		t.Fatalf("query error %T %v, want *mysql.MySQLError itself", err, err)
	}
	var ts time.Time
	if err := conn.QueryRowContext(context.Background(), "SELECT NOW()").Scan(&ts); err != nil {
		t.Fatalf("parseTime from the DSN not applied: %v", err)
	}
	if n := b.apiCalls(); n != 1 {
		t.Fatalf("GetSecretValue calls %d, want 1", n)
	}
}

func TestSecretShapes(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	const hard = `p@ss/w:rd?#&=%'"\ ü€`
	t.Run("punctuation and non-ascii password", func(t *testing.T) {
		b := newBed(t, hard)
		ping(t, b.openDSN(b.arn))
	})
	t.Run("port as string", func(t *testing.T) {
		b := newBed(t, "pw-port-string")
		doc := fmt.Sprintf(`{"engine":"mariadb","host":%q,"port":"%d","username":%q,"password":%q,"dbname":%q}`, b.host, b.port, b.user, b.password, b.db)
		if _, err := b.sm.Store().PutSecretValue(b.arn, doc, nil); err != nil {
			t.Fatal(err)
		}
		ping(t, b.open())
	})
	t.Run("no host in secret, host and port in DSN", func(t *testing.T) {
		b := newBed(t, "pw-rds-managed")
		doc := fmt.Sprintf(`{"username":%q,"password":%q}`, b.user, b.password)
		if _, err := b.sm.Store().PutSecretValue(b.arn, doc, nil); err != nil {
			t.Fatal(err)
		}
		db := b.openDSN(fmt.Sprintf("%s?host=%s&port=%d&dbname=%s", b.arn, b.host, b.port, b.db))
		ping(t, db)
		var got string
		if err := db.QueryRow("SELECT DATABASE()").Scan(&got); err != nil || got != b.db {
			t.Fatalf("dbname from DSN: %q, %v", got, err)
		}
	})
	t.Run("no host anywhere is a clear error", func(t *testing.T) {
		b := newBed(t, "pw-no-host")
		if _, err := b.sm.Store().PutSecretValue(b.arn, fmt.Sprintf(`{"username":%q,"password":%q}`, b.user, b.password), nil); err != nil {
			t.Fatal(err)
		}
		err := b.open().Ping()
		if err == nil || !containsAll(err.Error(), b.arn, "no host", "host=") {
			t.Fatalf("error %v", err)
		}
	})
}

// rotationLoad runs a single-user rotation under load (workers goroutines,
// every query dials) and checks the bounds of the core issue.
func TestRotationUnderLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		stuck  bool
		multi  bool
		window time.Duration
	}{
		{name: "single user", window: 2 * time.Second},
		{name: "stuck after setSecret", stuck: true, window: 4 * time.Second},
		{name: "multi user", multi: true, window: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "initial-Password-1")
			if tc.multi {
				b.rot.Strategy = rotatingmysqltest.MultiUser
			}
			// A short TTL so the multi-user case switches users during the
			// test; the single-user cases do not depend on it.
			db := b.open(rotatingmysql.WithTTL(time.Second))
			db.SetMaxIdleConns(0)
			ping(t, db)
			calls0, denied0 := b.apiCalls(), b.deniedLogins()

			l := startLoad(db, 16)
			time.Sleep(300 * time.Millisecond)
			ctx := context.Background()
			var err error
			rotating := time.Now()
			var rotated time.Time
			if tc.stuck {
				err = errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx), b.rot.TestSecret(ctx))
				time.Sleep(tc.window) // finishSecret never comes
				rotated = time.Now()
			} else {
				b.rot.Pause = tc.window
				err = b.rot.Rotate(ctx)
				rotated = time.Now()
				time.Sleep(1500 * time.Millisecond) // past the TTL, on the new AWSCURRENT
			}
			if err != nil {
				t.Fatal(err)
			}
			l.stop(t)
			l.meets(t, rotating, rotated, "the rotation")
			// The rotation's setSecret step first tries AWSPENDING, as the AWS
			// template does: one failed login that is not the driver's.
			calls, denied := b.apiCalls()-calls0, b.deniedLogins()-denied0-1
			t.Logf("GetSecretValue calls %d, failed logins by the driver %d", calls, denied)
			// The TTL of 1s adds about one call per second of the test.
			if max := 10 + int(tc.window/time.Second) + 3; calls > max {
				t.Errorf("GetSecretValue calls %d, want at most %d", calls, max)
			}
			if denied > 20 {
				t.Errorf("failed logins on the server %d, want at most 20", denied)
			}
			if tc.multi && denied > 0 {
				t.Errorf("multi-user rotation: %d failed logins, want 0", denied)
			}
		})
	}
}

func TestBurstAfterCompletedRotation(t *testing.T) {
	t.Parallel()
	b := newBed(t, "before-rotation-1")
	db := b.open()
	db.SetMaxIdleConns(0)
	ping(t, db) // the cache holds the old password
	if err := b.rot.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls0, denied0 := b.apiCalls(), b.deniedLogins()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start := make(chan struct{})
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			conn, err := db.Conn(context.Background())
			if err != nil {
				errs <- err
				return
			}
			conn.Close()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("connection failed: %v", err)
	}
	calls, denied := b.apiCalls()-calls0, b.deniedLogins()-denied0
	t.Logf("64 dialers after rotation: %d GetSecretValue calls, %d failed logins", calls, denied)
	if calls > 3 {
		t.Errorf("GetSecretValue calls %d, want at most 3", calls)
	}
	if denied > 64 {
		t.Errorf("failed logins %d, want at most the dials in flight", denied)
	}
}

func TestWrongEverywhereFailsFastAndSafe(t *testing.T) {
	t.Parallel()
	b := newBed(t, "the-real-password")
	store := b.sm.Store()
	if _, err := store.PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "wrong-current", b.db), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "wrong-pending", b.db), []string{"AWSPENDING"}); err != nil {
		t.Fatal(err)
	}
	db := b.open()
	calls0, denied0 := b.apiCalls(), b.deniedLogins()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := db.PingContext(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Ping succeeded with wrong passwords")
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("error %v: errors.As finds no *mysql.MySQLError 1045", err)
	}
	var ce *rotatingmysql.ConnectError
	if !errors.As(err, &ce) || len(ce.Attempts) == 0 {
		t.Fatalf("error %v is not a ConnectError with attempts", err)
	}
	if containsAny(err.Error(), "wrong-current", "wrong-pending", "the-real-password") {
		t.Fatalf("error leaks a password: %v", err)
	}
	if took > 6*time.Second {
		t.Errorf("Ping took %v, want at most 6s", took)
	}
	calls, denied := b.apiCalls()-calls0, b.deniedLogins()-denied0
	t.Logf("gave up after %v: %d API calls, %d failed logins: %v", took.Round(time.Millisecond), calls, denied, err)
	if calls > 12 || denied > 12 {
		t.Errorf("API calls %d, failed logins %d; want at most 12 each", calls, denied)
	}
}

func TestSecretsManagerOutage(t *testing.T) {
	t.Parallel()
	t.Run("after warm-up new connections keep working", func(t *testing.T) {
		t.Parallel()
		b := newBed(t, "outage-pw-1")
		db := b.open(rotatingmysql.WithTTL(100 * time.Millisecond))
		db.SetMaxIdleConns(0)
		ping(t, db)
		if err := b.sm.SetDown(true); err != nil {
			t.Fatal(err)
		}
		defer b.sm.SetDown(false)
		time.Sleep(150 * time.Millisecond) // past the TTL
		for range 10 {
			ping(t, db)
		}
	})
	t.Run("from the start a clear error before the deadline", func(t *testing.T) {
		t.Parallel()
		b := newBed(t, "outage-pw-2")
		if err := b.sm.SetDown(true); err != nil {
			t.Fatal(err)
		}
		defer b.sm.SetDown(false)
		db := b.open()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := db.PingContext(ctx)
		if err == nil || time.Since(start) > 5500*time.Millisecond {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		if !containsAll(err.Error(), "AWSCURRENT", b.arn) {
			t.Fatalf("error does not name the secret and stage: %v", err)
		}
	})
	t.Run("throttled during warm-up is retried by the SDK", func(t *testing.T) {
		t.Parallel()
		b := newBed(t, "outage-pw-3")
		b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "ThrottlingException", Status: 400, Times: 1})
		ping(t, b.open())
	})
}

func TestDatabaseDownNoRefreshStorm(t *testing.T) {
	t.Parallel()
	b := newBed(t, "db-down-pw")
	// A port where nothing listens: every dial is refused.
	doc := rotatingmysqltest.SecretJSON("127.0.0.1", 1, b.user, b.password, b.db)
	if _, err := b.sm.Store().PutSecretValue(b.arn, doc, nil); err != nil {
		t.Fatal(err)
	}
	db := b.open()
	for range 20 {
		start := time.Now()
		err := db.Ping()
		if err == nil {
			t.Fatal("ping succeeded with the database down")
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("ping took %v: want a fast network error", time.Since(start))
		}
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			t.Fatalf("network failure reported as a server error: %v", err)
		}
	}
	if n := b.apiCalls(); n > 3 {
		t.Fatalf("20 pings with the database down made %d GetSecretValue calls, want at most 3", n)
	}
}

func TestAccountLockedIsNotRetried(t *testing.T) {
	t.Parallel()
	b := newBed(t, "lock-pw")
	ctx := context.Background()
	if _, err := b.srv.Root().ExecContext(ctx, fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT LOCK", b.user)); err != nil {
		t.Fatal(err)
	}
	db := b.open()
	calls0, denied0 := b.apiCalls(), b.deniedLogins()
	err := db.Ping()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number == 1045 {
		t.Fatalf("locked account: %v, want the server's lock error", err)
	}
	if calls := b.apiCalls() - calls0; calls > 1 {
		t.Errorf("a locked account made %d API calls, want at most the first fetch", calls)
	}
	t.Logf("locked account: %v; failed logins %d", err, b.deniedLogins()-denied0)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if contains(s, sub) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestDriverOpenReleasesItsConnector: Driver.Open (the driver.Driver path,
// which database/sql does not take but callers may) makes a connector for
// one connection and releases it: the source's idle HTTP connections are
// closed, so the emulator holds none once the connection is closed.
func TestDriverOpenReleasesItsConnector(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "driver-Open-pw")
	for k, v := range b.sm.Env() {
		t.Setenv(k, v)
	}
	for range 3 {
		conn, err := (&rotatingmysql.Driver{}).Open(b.arn)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.apiCalls(); n != 3 {
		t.Errorf("3 opens made %d GetSecretValue calls, want 3 (nothing kept between them)", n)
	}
	for i := 0; i < 100 && b.sm.OpenConnections() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.sm.OpenConnections(); n != 0 {
		t.Errorf("%d connections to the emulator left open", n)
	}
}
