package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// The Examples run in `go test` without a network: setUpExample puts the
// test kit's Secrets Manager emulator (and its Secrets Manager Agent) in
// front of the MariaDB server that TestMain starts, and points the AWS
// environment variables at them. In production there is nothing to set
// up: the secret lives in Secrets Manager and the database in RDS.

// Example opens a pool with sql.Open and a DSN that is the secret's ARN,
// then keeps opening connections while a rotation changes the password
// under it.
func Example() {
	stage := setUpExample()
	defer stage.Close()

	// The DSN is the secret's ARN (or name), then any go-sql-driver/mysql
	// parameter. The credentials, host and port come from the secret.
	db, err := sql.Open("rotatingmysql", stage.SecretARN+"?parseTime=true")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // every query dials, to show what a new connection meets

	var now time.Time
	if err := db.QueryRow("SELECT NOW()").Scan(&now); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected")

	// A rotation reaches its setSecret step: the database now accepts only
	// the new password, while AWSCURRENT still holds the old one.
	stage.StartRotation()
	if err := db.QueryRow("SELECT NOW()").Scan(&now); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected during the rotation")

	stage.FinishRotation()
	if err := db.QueryRow("SELECT NOW()").Scan(&now); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected after the rotation")
	// Output:
	// connected
	// connected during the rotation
	// connected after the rotation
}

// ExampleNewConnector builds a connector from code, with the program's own
// AWS configuration and a logger, and opens the pool with sql.OpenDB.
func ExampleNewConnector() {
	stage := setUpExample()
	defer stage.Close()

	// In production: awsCfg, err := config.LoadDefaultConfig(ctx)
	awsCfg := stage.AWSConfig()

	cfg := rotatingmysql.NewConfig(stage.SecretARN)
	err := cfg.Apply(
		rotatingmysql.WithAWSConfig(awsCfg),
		rotatingmysql.WithTTL(5*time.Minute),
		rotatingmysql.WithLogger(slog.Default()), // rotation events at Info, problems at Warn and Error
	)
	if err != nil {
		log.Fatal(err)
	}
	connector, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	// Open connections survive a rotation: the pool may keep them as long
	// as the server does.
	db.SetConnMaxLifetime(time.Hour)
	db.SetMaxIdleConns(4)

	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		log.Fatal(err)
	}
	fmt.Println(one)
	// Output: 1
}

// Example_agent reads the secret through the AWS Secrets Manager Agent or
// the Lambda "Parameters and Secrets" extension on localhost, and falls back
// to the Secrets Manager API when the agent is not running.
func Example_agent() {
	stage := setUpExample()
	defer stage.Close()

	// The agent's port comes from PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
	// (default 2773), its token from AWS_TOKEN or, inside Lambda,
	// AWS_SESSION_TOKEN. sql.Open("rotatingmysql", dsn) takes the same DSN;
	// ParseDSN and NewConnector keep the connector at hand for its Stats.
	cfg, err := rotatingmysql.ParseDSN(stage.SecretARN + "?source=agent,secretsmanager")
	if err != nil {
		log.Fatal(err)
	}
	connector, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("fetched from:", connector.Stats().FetchesBySource)
	// Output: fetched from: map[agent:1]
}

// ExampleConnector_Stats reads the counters after a rotation, as a metrics
// exporter would on each scrape.
func ExampleConnector_Stats() {
	stage := setUpExample()
	defer stage.Close()

	connector := stage.Connector()
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxIdleConns(0)
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}
	stage.StartRotation()
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}

	s := connector.Stats()
	fmt.Println("logins refused with 1045 and absorbed:", s.AuthRefused)
	fmt.Println("switches to AWSPENDING:", s.PendingUsed)
	fmt.Println("new connections use:", s.CurrentStage)
	fmt.Println("gave up:", s.GaveUp)
	// Output:
	// logins refused with 1045 and absorbed: 1
	// switches to AWSPENDING: 1
	// new connections use: AWSPENDING
	// gave up: 0
}

// ExampleConnector_HealthCheck serves a health endpoint for a load
// balancer: it opens a new connection each time, which sql.DB.Ping may not.
func ExampleConnector_HealthCheck() {
	stage := setUpExample()
	defer stage.Close()
	connector := stage.Connector()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Answer before the load balancer's probe times out.
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		h := connector.HealthCheck(ctx)
		if !h.Healthy {
			// h.String() names the failed step and the reason, never a password.
			http.Error(w, h.String(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	// What the load balancer's probe gets:
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())

	stage.BreakPassword() // the database's password changed behind the secret's back
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	fmt.Println(rec.Code)
	// Output:
	// 200 ok
	// 503
}

// ExampleConnector_RotationStatus shows whether a rotation is under way and
// which version this process uses.
func ExampleConnector_RotationStatus() {
	stage := setUpExample()
	defer stage.Close()
	connector := stage.Connector()
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxIdleConns(0)

	stage.StartRotation()
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}
	st, err := connector.RotationStatus(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("in progress:", st.InProgress)
	fmt.Println("this process uses the pending version:", st.InUseVersionID == st.PendingVersionID, st.InUseStage)

	stage.FinishRotation()
	if st, err = connector.RotationStatus(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("in progress:", st.InProgress)
	fmt.Println("this process uses the current version:", st.InUseVersionID == st.CurrentVersionID)
	// Output:
	// in progress: true
	// this process uses the pending version: true AWSPENDING
	// in progress: false
	// this process uses the current version: true
}

// exampleStage is the world the Examples run in; see setUpExample.
type exampleStage struct {
	// SecretARN is the ARN of the example account's secret.
	SecretARN string

	srv   *testdb.Server
	user  string
	db    string
	sm    *rotatingmysqltest.SecretsManager
	agent *rotatingmysqltest.Agent
	rot   *rotatingmysqltest.Rotator
	env   map[string]*string // the variables' values before setUpExample
	conns []*rotatingmysql.Connector
}

// setUpExample creates an account with its own database on the MariaDB
// server TestMain started, stores its secret in the test kit's Secrets
// Manager emulator, starts the kit's agent on the same store, and points
// the AWS and agent environment variables at them until Close. Examples
// run one at a time, after the tests, so setting the environment is safe.
func setUpExample() *exampleStage {
	srv, err := testdb.Shared()
	if err != nil {
		log.Fatalf("the Examples need the MariaDB server that TestMain starts: %v", err)
	}
	ctx := context.Background()
	s := &exampleStage{srv: srv, user: testdb.UniqueName("ex"), db: testdb.UniqueName("exdb"), env: map[string]*string{}}
	password := "example-Password-1"
	if err := srv.CreateUser(ctx, s.user, password, s.db); err != nil {
		log.Fatal(err)
	}
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		log.Fatal(err)
	}
	s.sm = sm
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	port, _ := strconv.Atoi(portStr)
	if s.SecretARN, _, err = sm.Store().CreateSecret(testdb.UniqueName("example"), rotatingmysqltest.SecretJSON(host, port, s.user, password, s.db)); err != nil {
		log.Fatal(err)
	}
	if s.agent, err = rotatingmysqltest.NewAgent(sm.Store(), "example-agent-token"); err != nil {
		log.Fatal(err)
	}
	s.rot = rotatingmysqltest.NewRotator(sm.Store(), s.SecretARN, srv.Root(), rotatingmysqltest.SingleUser)
	for _, env := range []map[string]string{sm.Env(), s.agent.Env()} {
		for k, v := range env {
			if _, saved := s.env[k]; !saved {
				if old, ok := os.LookupEnv(k); ok {
					s.env[k] = &old
				} else {
					s.env[k] = nil
				}
			}
			os.Setenv(k, v)
		}
	}
	return s
}

// AWSConfig is what config.LoadDefaultConfig returns in production.
func (s *exampleStage) AWSConfig() aws.Config { return s.sm.AWSConfig() }

// Connector returns a connector on the example's secret, closed by Close.
func (s *exampleStage) Connector() *rotatingmysql.Connector {
	cfg := rotatingmysql.NewConfig(s.SecretARN)
	if err := cfg.Apply(rotatingmysql.WithAWSConfig(s.AWSConfig())); err != nil {
		log.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	s.conns = append(s.conns, c)
	return c
}

// StartRotation runs a rotation's createSecret, setSecret and testSecret
// steps: the database accepts only the AWSPENDING password from then on.
func (s *exampleStage) StartRotation() {
	ctx := context.Background()
	if err := errors.Join(s.rot.CreateSecret(ctx), s.rot.SetSecret(ctx), s.rot.TestSecret(ctx)); err != nil {
		log.Fatal(err)
	}
}

// FinishRotation runs the finishSecret step: AWSCURRENT moves to the new
// version.
func (s *exampleStage) FinishRotation() {
	if err := s.rot.FinishSecret(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// BreakPassword changes the account's password to one no version of the
// secret holds.
func (s *exampleStage) BreakPassword() {
	if err := s.srv.SetPassword(context.Background(), s.user, "held-by-no-version-1"); err != nil {
		log.Fatal(err)
	}
}

// Close restores the environment and removes what setUpExample made.
func (s *exampleStage) Close() {
	for k, v := range s.env {
		if v == nil {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, *v)
		}
	}
	for _, c := range s.conns {
		c.Close()
	}
	s.agent.Close()
	s.sm.Close()
	ctx := context.Background()
	if err := errors.Join(s.srv.DropUser(ctx, s.user), s.srv.DropDatabase(ctx, s.db)); err != nil {
		log.Print(err)
	}
}
