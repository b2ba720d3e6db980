// Package testdb runs a private MariaDB server for integration tests.
//
// Each test binary gets its own server: a fresh data directory in a temporary
// directory, listening on a free port on 127.0.0.1, with a root account that
// has no password. Tests create their own users and databases (named with
// [UniqueName]) so that parallel tests do not collide.
//
// Wire it up once per package in TestMain and ask for the server in each test:
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
//
//	func TestLogin(t *testing.T) {
//		srv := testdb.Require(t) // skips locally when MariaDB is not installed
//		user, db := srv.TempUser(t, "s3cret'\"\\")
//		cfg := srv.UserConfig(user, "s3cret'\"\\", db)
//		// open cfg with mysql.NewConnector and sql.OpenDB ...
//	}
//
// [Run] starts the server before the tests and stops it afterwards. When the
// environment variable named by [EnvRootDSN] is set, Run uses that server
// instead of starting one. When MariaDB is not installed the tests run without
// a server and [Require] skips them, unless the environment variable CI is
// true: in CI a missing server is a failure. scripts/install-mariadb.sh (run by
// `make test`) installs MariaDB.
package testdb
