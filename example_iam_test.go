package rotatingmysql_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// Example_iam logs in with RDS IAM database authentication: no password
// anywhere, a token signed with the process's AWS credentials for each
// new connection (reused for 14m30s), sent over TLS.
func Example_iam() {
	stage := setUpIAMExample()
	defer stage.Close()

	// The RDS CA bundle, in production read from
	// https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem.
	rootCAs := x509.NewCertPool()
	rootCAs.AppendCertsFromPEM(stage.CABundle())
	if err := mysql.RegisterTLSConfig("rds", &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12}); err != nil {
		log.Fatal(err)
	}
	defer mysql.DeregisterTLSConfig("rds")

	// USER@HOST:PORT/DBNAME?source=iam&tls=rds; in production the host is
	// the RDS endpoint, such as mydb.cluster-abc.us-east-1.rds.amazonaws.com,
	// and the region comes from it. The AWS credentials come from the SDK's
	// default chain (here AWS_ACCESS_KEY_ID...; in production a role).
	db, err := sql.Open("rotatingmysql", "app_user@"+stage.Endpoint+"/"+stage.DB+"?source=iam&tls=rds")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected with an IAM token:", one == 1)

	// Without TLS the driver refuses to open: the token would travel in
	// clear text.
	_, err = sql.Open("rotatingmysql", "app_user@"+stage.Endpoint+"/"+stage.DB+"?source=iam")
	fmt.Println(errors.Is(err, rotatingmysql.ErrInvalidDSN))
	// Output:
	// connected with an IAM token: true
	// true
}

// ExampleNewIAMConfig builds an IAM connector from code, with the program's
// own aws.Config (whose credentials provider signs each token) and TLS
// configuration.
func ExampleNewIAMConfig() {
	stage := setUpIAMExample()
	defer stage.Close()

	// In production: awsCfg, err := config.LoadDefaultConfig(ctx)
	awsCfg := stage.AWSConfig()
	rootCAs := x509.NewCertPool()
	rootCAs.AppendCertsFromPEM(stage.CABundle())

	cfg := rotatingmysql.NewIAMConfig("app_user", stage.Host, stage.Port, stage.DB)
	err := cfg.Apply(
		rotatingmysql.WithAWSConfig(awsCfg),
		rotatingmysql.WithTLSConfig(&tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12}),
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
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("token reused for:", cfg.TTL)
	fmt.Println("tokens signed:", connector.Stats().FetchesBySource["iam"])
	// Output:
	// token reused for: 14m30s
	// tokens signed: 1
}

// ExampleWithSecretKeys reads a secret written in another shape,
// {"DB_USER":...,"DB_PASSWORD":...,"DB_HOST":...}, through a rotation.
func ExampleWithSecretKeys() {
	stage := setUpExample()
	defer stage.Close()
	stage.UseShape(credsource.Keys{Username: "DB_USER", Password: "DB_PASSWORD", Host: "DB_HOST"})

	// With sql.Open: SECRET_ID?usernameKey=DB_USER&passwordKey=DB_PASSWORD&hostKey=DB_HOST
	cfg := rotatingmysql.NewConfig(stage.SecretARN)
	err := cfg.Apply(
		rotatingmysql.WithAWSConfig(stage.AWSConfig()),
		rotatingmysql.WithSecretKeys(credsource.Keys{Username: "DB_USER", Password: "DB_PASSWORD", Host: "DB_HOST"}),
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
	db.SetMaxIdleConns(0)
	for _, step := range []func(){func() {}, stage.StartRotation, stage.FinishRotation} {
		step()
		if err := db.Ping(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("connected before, during and after the rotation")
	// Output: connected before, during and after the rotation
}

// UseShape rewrites the example's secret with its fields under keys (empty
// ones stay RDS keys) and makes the rotation write it the same way.
func (s *exampleStage) UseShape(keys credsource.Keys) {
	k := keys.WithDefaults()
	host, portStr, _ := net.SplitHostPort(s.srv.Addr)
	port, _ := strconv.Atoi(portStr)
	doc, _ := json.Marshal(map[string]any{k.Username: s.user, k.Password: "example-Password-1", k.Host: host, k.Port: port, k.DBName: s.db})
	if _, err := s.sm.Store().PutSecretValue(s.SecretARN, string(doc), nil); err != nil {
		log.Fatal(err)
	}
	s.rot.Keys = rotatingmysqltest.Keys(keys)
}

// iamExampleStage is the world of the IAM Examples: an account on the
// MariaDB server TestMain started, behind the test kit's IAMFront, which
// checks tokens as RDS does, and AWS credentials in the environment.
type iamExampleStage struct {
	Endpoint string // HOST:PORT of the front
	Host     string
	Port     int
	DB       string

	srv   *testdb.Server
	user  string
	front *rotatingmysqltest.IAMFront
	env   map[string]*string
}

func setUpIAMExample() *iamExampleStage {
	srv, err := testdb.Shared()
	if err != nil {
		log.Fatalf("the Examples need the MariaDB server that TestMain starts: %v", err)
	}
	s := &iamExampleStage{srv: srv, user: testdb.UniqueName("exiam"), DB: testdb.UniqueName("exiamdb"), env: map[string]*string{}}
	const pw = "example-Iam-Backend-Pw"
	if err := srv.CreateUser(context.Background(), s.user, pw, s.DB); err != nil {
		log.Fatal(err)
	}
	if s.front, err = rotatingmysqltest.NewIAMFront(srv.Addr, "us-east-1"); err != nil {
		log.Fatal(err)
	}
	s.front.AddCredentials(aws.Credentials{AccessKeyID: "AKIAEXAMPLEIAM00001", SecretAccessKey: "example-Iam-Secret-Key"})
	s.front.AddUser("app_user", s.user, pw)
	s.Endpoint, s.Host, s.Port = s.front.Addr(), s.front.Host(), s.front.Port()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEIAM00001", "AWS_SECRET_ACCESS_KEY": "example-Iam-Secret-Key", "AWS_SESSION_TOKEN": "",
		"AWS_REGION": "us-east-1", "AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": "/nonexistent/rotatingmysql-example", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/rotatingmysql-example",
	} {
		if old, ok := os.LookupEnv(k); ok {
			s.env[k] = &old
		} else {
			s.env[k] = nil
		}
		os.Setenv(k, v)
	}
	return s
}

// CABundle is the PEM file a program loads as the RDS CA bundle.
func (s *iamExampleStage) CABundle() []byte { return s.front.CertificatePEM() }

// AWSConfig is what config.LoadDefaultConfig returns in production.
func (s *iamExampleStage) AWSConfig() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAEXAMPLEIAM00001", "example-Iam-Secret-Key", "")}
}

// Close restores the environment and removes what setUpIAMExample made.
func (s *iamExampleStage) Close() {
	for k, v := range s.env {
		if v == nil {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, *v)
		}
	}
	s.front.Close()
	ctx := context.Background()
	if err := errors.Join(s.srv.DropUser(ctx, s.user), s.srv.DropDatabase(ctx, s.DB)); err != nil {
		log.Print(err)
	}
}
