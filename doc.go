// Package rotatingmysql is a database/sql driver for MySQL, Aurora MySQL and
// MariaDB whose password AWS Secrets Manager rotates. It makes the rotation
// invisible to the application: the DSN is the secret's ARN, and new
// connections keep working while the password changes under them.
//
//	import _ "github.com/rotatingmysql/rotatingmysql"
//
//	db, err := sql.Open("rotatingmysql", "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-AbCdEf?parseTime=true")
//
// The connection handed to database/sql is go-sql-driver/mysql's own: the
// query path, its errors (*mysql.MySQLError) and its cost are that driver's,
// so GORM (gorm.io/driver/mysql with DriverName "rotatingmysql"), sqlx and
// any other database/sql library work unchanged.
//
// # The problem
//
// Managed rotation (the MySQLSingleUser template) changes the database
// password in its setSecret step, seconds to minutes before finishSecret
// moves the AWSCURRENT label to the new version. In that window, and forever
// for programs that read the password once at start-up, every new
// connection fails with MySQL error 1045 while open connections keep
// working.
//
// # What the driver does
//
// The connector fetches the secret (AWSCURRENT) on the first connection and
// caches it for a TTL. When the server refuses a new connection with 1045,
// it refreshes AWSCURRENT and reads AWSPENDING in one round trip, dials the
// version that is new, and from then on dials the version that logged in,
// without an API call per connection. A refresh is shared by every
// connection that needs it (one fetch per stage at a time). Which version
// to dial is decided by a ledger of evidence (what the source labels each
// version, which logins the server accepted or refused): a password the
// server refused is not dialed again but by a single probe per hold period
// (refusedHold, doubling), and a version not proven yet is tried by one
// connection at a time, so the failed logins the driver costs an account
// stay within a documented budget. Logins per Connect are capped and every
// wait is bounded in time (retryTimeout, ErrRetryTimeout); errors other
// than 1045 (network failures, locked accounts) are returned at once.
// Databases opened on the same secret in one process share the source, the
// cache and the ledger (isolateCache=true opts out).
// When it gives up, the error is a *ConnectError that names the secret and
// the versions tried, and wraps the server's *mysql.MySQLError.
//
// # Opening a pool
//
// With a DSN: SECRET_ID[?PARAMS], the secret's ARN or name, then
// rotatingmysql's own parameters (source, region, host, port, dbname, ttl,
// retryTimeout, maxLoginAttempts, refusedHold, loginTimeout, isolateCache,
// agentEndpoint, allowRemoteAgent, the JSON key names, allowInsecureIAM)
// mixed with any go-sql-driver/mysql parameter (parseTime, tls, timeout,
// ...). Names are checked without case: user, password and a misspelt
// parameter are refused at sql.Open. See ParseDSN.
//
// From code: NewConfig, Config.Apply with Options (WithAWSConfig,
// WithCredentialSource, WithTLSConfig, WithMySQLConfig, WithLogger,
// WithRetryPolicy, WithTTL, ...) and NewConnector, then sql.OpenDB(connector). Keep the
// *Connector: it has Stats, RotationStatus and HealthCheck.
//
// Credentials come from the Secrets Manager API by default; source=agent
// reads them through the Secrets Manager Agent or the Lambda "Parameters
// and Secrets" extension on localhost, and source=agent,secretsmanager
// falls back to the API when the agent is not running (see Config.Source).
// Secrets in another JSON shape name their keys with usernameKey,
// passwordKey, hostKey, portKey and dbnameKey (WithSecretKeys).
//
// RDS IAM database authentication needs no secret: the DSN
// USER@HOST[:PORT][/DBNAME]?source=iam&tls=NAME (or NewIAMConfig) logs in
// with a token signed from the process's AWS credentials, reused for 14m30s
// and signed again after a 1045. The token is sent in clear text inside TLS,
// so TLS with a verified certificate is required.
//
// # Connection pool settings
//
// MySQL checks the password only when a connection logs in, so connections
// already open survive a rotation; only new ones meet it. No pool setting
// is needed for the rotation. SetConnMaxLifetime should stay below the
// server's wait_timeout as with any MySQL pool, and SetMaxIdleConns above
// zero, so that fewer connections are opened during a rotation window.
//
// # Observing rotations
//
// Logging: WithLogger takes a *slog.Logger; without one, nothing is logged.
// The events and their levels:
//
//   - Debug "secret fetched" (secret, source, stage, version_id, latency,
//     forced) and "secret version not found" (AWSPENDING outside a
//     rotation): once per fetch.
//   - Info "login refused (1045)" (secret, stage, version_id, user): once
//     per login the server refused. "using AWSPENDING" (secret, stage,
//     version_id, user): once when new connections switch to the rotation's
//     pending version.
//   - Warn "serving cached secret, fetch failed" (with the error and the
//     version served) and "secret fetch failed" (nothing cached to serve).
//   - Error "gave up connecting" (secret, attempts, the ConnectError).
//
// With slog.Default() at its default level (Info) a rotation logs a few
// Info lines and nothing else; fetches show at Debug. No event holds a
// password or a token.
//
// Metrics: Connector.Stats returns counters in the manner of sql.DBStats
// (fetches by stage and by source, cache hits, refused logins, switches to
// AWSPENDING, give-ups, the version in use, the last fetch error). Read it
// from an expvar.Func, a Prometheus collector or an OpenTelemetry
// observable callback; the library depends on none of them.
//
// Rotation status: Connector.RotationStatus reads DescribeSecret and tells
// whether a rotation is in progress (an AWSPENDING version distinct from
// AWSCURRENT), the rotation dates, the versions and their stages, and which
// version this process uses.
//
// Health: Connector.HealthCheck fetches, opens a new connection, runs
// SELECT 1 and closes it, and returns a Health value naming the step that
// failed and why: for load-balancer and Lambda health endpoints.
//
// # Testing
//
// Package rotatingmysqltest has an in-process Secrets Manager emulator, a
// fake Secrets Manager Agent, and a Rotator that runs the rotation steps
// against a real server, so a program's tests can rotate the password
// under it.
package rotatingmysql
