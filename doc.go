// Package rotatingmysql is a database/sql driver for MySQL, Aurora MySQL and
// MariaDB whose password is rotated by AWS Secrets Manager. It makes the
// rotation invisible to the application:
//
//	import _ "github.com/rotatingmysql/rotatingmysql"
//
//	db, err := sql.Open("rotatingmysql", "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-AbCdEf?parseTime=true")
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
// connection that needs it (one fetch per stage at a time), and a password
// the server has refused is not dialed again while the refresh is under way,
// so the driver never locks an account by its own retries. Logins per
// Connect are capped and the whole recovery is bounded in time; errors
// other than 1045 (network failures, locked accounts) are returned at once.
//
// The connection handed to database/sql is go-sql-driver/mysql's own: the
// query path, its errors (*mysql.MySQLError) and its cost are that driver's.
//
// # DSN
//
// SECRET_ID[?PARAMS]: the secret's ARN or name, then rotatingmysql's own
// parameters (source, region, host, port, dbname, ttl, retryTimeout,
// maxLoginAttempts) mixed with any go-sql-driver/mysql parameter (parseTime,
// tls, timeout, ...; unknown names are session variables, as with that
// driver). See ParseDSN and the README for the reference.
//
// # Go API
//
// NewConfig, Config.Apply with Options (WithAWSConfig,
// WithSecretsManagerClient, WithSource, WithTLSConfig, WithMySQLConfig,
// WithLogger, WithRetryPolicy, WithTTL) and NewConnector build a connector
// from code; sql.OpenDB(connector) opens the pool.
package rotatingmysql
