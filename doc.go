// Package rotatingmysql is a database/sql driver for MySQL, Aurora MySQL and
// MariaDB whose password AWS Secrets Manager rotates. Open it with the
// secret's ARN instead of a DSN holding a password; when a rotation changes
// the password, new connections keep working and open ones are not touched.
//
//	import (
//		"database/sql"
//		"log"
//
//		_ "github.com/rotatingmysql/rotatingmysql" // registers "rotatingmysql"
//	)
//
//	func main() {
//		db, err := sql.Open("rotatingmysql",
//			"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-AbCdEf?parseTime=true")
//		if err != nil {
//			log.Fatal(err) // a malformed DSN; sql.Open does no network I/O
//		}
//		defer db.Close()
//		if err := db.Ping(); err != nil { // fetches the secret and logs in
//			log.Fatal(err)
//		}
//	}
//
// The connection handed to database/sql is go-sql-driver/mysql's own: the
// query path, its errors (*mysql.MySQLError) and its cost are that driver's,
// so GORM (gorm.io/driver/mysql with DriverName "rotatingmysql"), sqlx and
// other database/sql libraries work unchanged.
//
// # What happens in a rotation
//
// AWS's managed rotation changes the password on the database in its
// setSecret step, seconds to minutes before finishSecret moves the
// AWSCURRENT label to the new version. In that window a new connection made
// with AWSCURRENT fails with MySQL error 1045 ("access denied"). When the
// driver meets 1045 it reads AWSPENDING (which holds the new password
// during a rotation; AWSCURRENT follows only when AWSPENDING is absent or
// refused), in one call shared by every connection of the process, tries
// the new version with one connection, and sends every later connection to
// the version that logged in.
//
// Servers lock an account after repeated failed logins, so the driver keeps
// its own within a small budget: a password the server refused is not
// dialed again except by one probe per hold period (refusedHold, doubling),
// a version not yet proven is tried by one connection at a time, and a
// locked or blocked account is reported at once and never retried. Every
// wait is bounded: each login by loginTimeout, each connection by
// retryTimeout or the caller's context. When the credential source fails,
// the last good version keeps serving. When a connection gives up, the error
// is a *ConnectError that names the secret and the versions tried and wraps
// the server's *mysql.MySQLError.
//
// # Configuration
//
// The DSN is SECRET_ID[?PARAMS]: the secret's ARN or name, then
// rotatingmysql's own parameters (source, region, host, port, dbname, ttl,
// loginTimeout, retryTimeout, maxLoginAttempts, refusedHold, isolateCache,
// ...) mixed with any go-sql-driver/mysql parameter (parseTime, tls,
// timeout, ...), every name matched without regard to case. See ParseDSN.
// sql.Open("rotatingmysql", "") succeeds, for driver wrappers that look a
// driver up by name (otelsql.Register): its connections fail with
// ErrEmptyDSN.
//
// Credentials come from the Secrets Manager API by default; source=agent
// reads them through the Secrets Manager Agent or the Lambda extension on
// localhost, source=env from an environment variable, source=file from a
// mounted file, and source=iam signs RDS IAM authentication tokens
// (USER@HOST[:PORT][/DBNAME]?source=iam&tls=NAME, or NewIAMConfig).
//
// From code: NewConfig (or ParseDSN), Config.Apply with options
// (WithAWSConfig, WithTLSConfig, WithLogger, ...), NewConnector, then
// sql.OpenDB. Keep the *Connector: its Stats, RotationStatus and
// HealthCheck methods are for operators.
//
// # Testing your own code
//
// Package rotatingmysqltest has an in-process Secrets Manager emulator, a
// fake Secrets Manager Agent, and a Rotator that runs the rotation steps
// against a real server, so a program's tests can rotate the password under
// it.
//
// # Documentation
//
// The README and the docs directory of the repository
// (https://github.com/rotatingmysql/rotatingmysql) cover the credential
// sources and deployment recipes, IAM, how the driver decides, its
// guarantees with the tests that check them, errors, observability and
// performance.
package rotatingmysql
