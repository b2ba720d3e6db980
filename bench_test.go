package rotatingmysql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// The benchmarks pair rotatingmysql with the plain go-sql-driver/mysql
// driver in the same run: every benchmark ends in driver=plain and
// driver=rotatingmysql sub-benchmarks doing the same work against the same
// MariaDB user, so that `benchstat -col /driver` (make bench) shows the
// ratio. The plain driver gets exactly the mysql.Config rotatingmysql builds
// from the secret. `make bench` runs them.

// benchEnv is one benchmark's world: the real MariaDB, a user with its own
// database, and the Secrets Manager emulator holding the user's secret.
type benchEnv struct {
	srv      *testdb.Server
	sm       *rotatingmysqltest.SecretsManager
	aws      aws.Config // one HTTP client for every connector, as in a long-lived process
	user, db string
	password string
	arn      string
	host     string
	port     int
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	srv := testdb.Require(b)
	const password = "bench-Password-0"
	user, db := srv.TempUser(b, password)
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sm.Close() })
	host, portStr, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	e := &benchEnv{srv: srv, sm: sm, user: user, db: db, password: password, host: host, port: port}
	e.arn, _, err = sm.Store().CreateSecret(testdb.UniqueName("bench"), e.secretJSON(password))
	if err != nil {
		b.Fatal(err)
	}
	httpClient := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	b.Cleanup(httpClient.CloseIdleConnections)
	e.aws = sm.AWSConfig()
	e.aws.HTTPClient = httpClient
	return e
}

func (e *benchEnv) secretJSON(password string) string {
	return rotatingmysqltest.SecretJSON(e.host, e.port, e.user, password, e.db)
}

// plainConnector returns go-sql-driver/mysql's own connector with the
// settings rotatingmysql gives each credentials version.
func (e *benchEnv) plainConnector(b *testing.B, password string) driver.Connector {
	b.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = e.user, password, e.db
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(e.host, strconv.Itoa(e.port))
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// connector returns a rotatingmysql connector on the secret, reaching the
// emulator through the Go API.
func (e *benchEnv) connector(b *testing.B) *rotatingmysql.Connector {
	b.Helper()
	cfg := rotatingmysql.NewConfig(e.arn)
	if err := cfg.Apply(rotatingmysql.WithAWSConfig(e.aws)); err != nil {
		b.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// envRounds names the environment variable that sets how many rounds each
// benchmark runs (default 1). `go test -count N` would run each
// sub-benchmark N times in a row, so that a burst of load from another
// process lands on one driver only; rounds interleave the drivers instead,
// each round running every pair back to back and alternating which driver
// goes first. With several rounds each is a sub-benchmark round=N, which
// `benchstat -ignore /round` folds together (scripts/bench.sh).
const envRounds = "ROTATINGMYSQL_BENCH_ROUNDS"

// rounds runs f once per round; reverse is true in the rounds where
// driver=rotatingmysql runs first.
func rounds(b *testing.B, f func(b *testing.B, reverse bool)) {
	n, _ := strconv.Atoi(os.Getenv(envRounds))
	if n <= 1 {
		f(b, false)
		return
	}
	width := len(strconv.Itoa(n))
	for i := 1; i <= n; i++ {
		b.Run(fmt.Sprintf("round=%0*d", width, i), func(b *testing.B) { f(b, i%2 == 0) })
	}
}

// pair runs plain and rotating as the sub-benchmarks driver=plain and
// driver=rotatingmysql, rotatingmysql first when reverse is true.
func pair(b *testing.B, reverse bool, plain, rotating func(b *testing.B)) {
	if reverse {
		b.Run("driver=rotatingmysql", rotating)
		b.Run("driver=plain", plain)
		return
	}
	b.Run("driver=plain", plain)
	b.Run("driver=rotatingmysql", rotating)
}

// drivers runs f as the sub-benchmarks driver=plain and
// driver=rotatingmysql, each with its own warmed-up connector.
func (e *benchEnv) drivers(b *testing.B, reverse bool, f func(b *testing.B, c driver.Connector)) {
	pair(b, reverse, func(b *testing.B) {
		f(b, e.plainConnector(b, e.password))
	}, func(b *testing.B) {
		c := e.connector(b)
		b.Cleanup(func() { c.Close() })
		// Warm the cache, as a running application's is.
		conn, err := c.Connect(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
		f(b, c)
	})
}

func openDB(b *testing.B, c driver.Connector) *sql.DB {
	b.Helper()
	db := sql.OpenDB(c)
	b.Cleanup(func() { db.Close() })
	return db
}

func mustPing(b *testing.B, db *sql.DB) {
	b.Helper()
	if err := db.Ping(); err != nil {
		b.Fatal(err)
	}
}

// benchQuery is a query of the pooled and new-connection benchmarks.
type benchQuery struct {
	name string
	run  func(ctx context.Context, db *sql.DB) error
}

var (
	selectOne = benchQuery{"select1", func(ctx context.Context, db *sql.DB) error {
		var one int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	}}
	// selectRow reads one small row by primary key, with a placeholder
	// (the mysql driver prepares, executes and closes a statement).
	selectRow = benchQuery{"row", func(ctx context.Context, db *sql.DB) error {
		var (
			id, qty int
			name    string
			price   float64
		)
		return db.QueryRowContext(ctx, "SELECT id, name, qty, price FROM items WHERE id = ?", 42).Scan(&id, &name, &qty, &price)
	}}
)

// createItems makes the table selectRow reads.
func (e *benchEnv) createItems(b *testing.B) {
	b.Helper()
	db := openDB(b, e.plainConnector(b, e.password))
	for _, q := range []string{
		"CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL)",
		"INSERT INTO items SELECT seq, CONCAT('item-', seq), seq % 17, seq * 1.25 FROM seq_1_to_100",
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
}

// run runs q once per iteration, serially or from GOMAXPROCS goroutines,
// after a few untimed runs and a garbage collection, so that what the setup
// left behind (for rotatingmysql, a new connector's SDK client and first
// fetch) is not paid for during the timed runs.
func run(b *testing.B, db *sql.DB, q benchQuery, parallel bool) {
	b.ReportAllocs()
	ctx := context.Background()
	for range 10 {
		if err := q.run(ctx, db); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	if parallel {
		// RunParallel runs the whole sub-benchmark again for each b.N it
		// tries, setup included: leave the setup out of the figures, as
		// b.Loop does.
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := q.run(ctx, db); err != nil {
					b.Error(err)
					return
				}
			}
		})
		return
	}
	for b.Loop() {
		if err := q.run(ctx, db); err != nil {
			b.Fatal(err)
		}
	}
}

var modes = []struct {
	name     string
	parallel bool
}{{"serial", false}, {"parallel", true}}

// BenchmarkPooledQuery measures queries on pooled connections: the query
// path, where rotatingmysql hands database/sql the mysql driver's own
// connection and should cost nothing.
func BenchmarkPooledQuery(b *testing.B) {
	e := newBenchEnv(b)
	e.createItems(b)
	rounds(b, func(b *testing.B, reverse bool) {
		for _, q := range []benchQuery{selectOne, selectRow} {
			for _, m := range modes {
				b.Run("query="+q.name+"/mode="+m.name, func(b *testing.B) {
					e.drivers(b, reverse, func(b *testing.B, c driver.Connector) {
						db := openDB(b, c)
						db.SetMaxIdleConns(64)
						mustPing(b, db)
						run(b, db, q, m.parallel)
					})
				})
			}
		}
	})
}

// BenchmarkNewConnection measures SELECT 1 on a new connection per query
// (SetMaxIdleConns(0)) with a warm credentials cache: the Connect fast
// path.
func BenchmarkNewConnection(b *testing.B) {
	e := newBenchEnv(b)
	rounds(b, func(b *testing.B, reverse bool) {
		for _, m := range modes {
			b.Run("mode="+m.name, func(b *testing.B) {
				e.drivers(b, reverse, func(b *testing.B, c driver.Connector) {
					db := openDB(b, c)
					db.SetMaxIdleConns(0)
					mustPing(b, db)
					calls := e.sm.Calls("GetSecretValue")
					run(b, db, selectOne, m.parallel)
					if n := e.sm.Calls("GetSecretValue") - calls; n != 0 {
						b.Fatalf("%d GetSecretValue calls with a warm cache, want 0", n)
					}
				})
			})
		}
	})
}

// BenchmarkConnect measures driver.Connector.Connect and Close without
// database/sql: allocs/op of driver=rotatingmysql minus driver=plain is what
// rotatingmysql allocates per connection beyond the mysql driver.
func BenchmarkConnect(b *testing.B) {
	e := newBenchEnv(b)
	rounds(b, func(b *testing.B, reverse bool) {
		e.drivers(b, reverse, func(b *testing.B, c driver.Connector) {
			ctx := context.Background()
			b.ReportAllocs()
			runtime.GC()
			for b.Loop() {
				conn, err := c.Connect(ctx)
				if err != nil {
					b.Fatal(err)
				}
				conn.Close()
			}
		})
	})
}

// BenchmarkRecovery measures one Connect from the stale cache to a working
// connection after the database has rotated: the login refused with 1045,
// the refresh, the login that works. The plain driver is the floor nobody
// can go under: the same refused login and the same good login with both
// passwords known in advance, no API call.
//
//   - case=pending: the rotation stopped after setSecret (the database has
//     the AWSPENDING password, AWSCURRENT still the old one).
//   - case=promoted: the rotation finished (AWSCURRENT is the new password).
//
// Each iteration sets the scene with the timer stopped: a new connector
// logged in with the old password, then the rotation.
func BenchmarkRecovery(b *testing.B) {
	e := newBenchEnv(b)
	rot := rotatingmysqltest.NewRotator(e.sm.Store(), e.arn, e.srv.Root(), rotatingmysqltest.SingleUser)
	ctx := context.Background()
	store := e.sm.Store()

	// rotate runs the rotation and returns the old and new passwords.
	rotate := func(b *testing.B, promoted bool) (string, string) {
		b.Helper()
		old, err := store.GetSecretValue(e.arn, "", rotatingmysqltest.StageCurrent)
		if err != nil {
			b.Fatal(err)
		}
		stage := rotatingmysqltest.StagePending
		if promoted {
			stage = rotatingmysqltest.StageCurrent
			err = rot.Rotate(ctx)
		} else {
			err = errors.Join(rot.CreateSecret(ctx), rot.SetSecret(ctx))
		}
		if err != nil {
			b.Fatal(err)
		}
		cur, err := store.GetSecretValue(e.arn, "", stage)
		if err != nil {
			b.Fatal(err)
		}
		return passwordOf(b, old.SecretString), passwordOf(b, cur.SecretString)
	}
	// reset finishes a rotation left pending, so that the next iteration
	// starts from AWSCURRENT = the database's password, as before any
	// rotation.
	reset := func(b *testing.B, promoted bool) {
		b.Helper()
		if promoted {
			return
		}
		if err := rot.FinishSecret(ctx); err != nil {
			b.Fatal(err)
		}
	}

	rounds(b, func(b *testing.B, reverse bool) {
		for _, promoted := range []bool{false, true} {
			name := "case=pending"
			if promoted {
				name = "case=promoted"
			}
			b.Run(name, func(b *testing.B) {
				pair(b, reverse, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						b.StopTimer()
						oldPW, newPW := rotate(b, promoted)
						stale, fresh := e.plainConnector(b, oldPW), e.plainConnector(b, newPW)
						b.StartTimer()
						if _, err := stale.Connect(ctx); !retry.IsAuthError(err) {
							b.Fatalf("login with the old password: %v, want 1045", err)
						}
						conn, err := fresh.Connect(ctx)
						if err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						conn.Close()
						reset(b, promoted)
						b.StartTimer()
					}
				}, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						b.StopTimer()
						c := e.connector(b)
						warm, err := c.Connect(ctx)
						if err != nil {
							b.Fatal(err)
						}
						warm.Close()
						rotate(b, promoted)
						refused := c.Stats().AuthRefused
						b.StartTimer()
						conn, err := c.Connect(ctx)
						if err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						if c.Stats().AuthRefused == refused {
							b.Fatal("Connect met no 1045: the scene was not set")
						}
						conn.Close()
						c.Close()
						reset(b, promoted)
						b.StartTimer()
					}
				})
			})
		}
	})
}

// passwordOf returns the password field of a secret's JSON.
func passwordOf(b *testing.B, secretString string) string {
	b.Helper()
	var v struct{ Password string }
	if err := json.Unmarshal([]byte(secretString), &v); err != nil || v.Password == "" {
		b.Fatalf("secret has no password: %v", err)
	}
	return v.Password
}
