// Package rotatingmysqltest provides fakes for testing programs that read
// MySQL credentials from AWS Secrets Manager while the credentials rotate, as
// net/http/httptest does for HTTP.
//
//   - Store keeps secrets, versions and staging labels in memory, by the
//     service's rules (AWSCURRENT, AWSPREVIOUS, AWSPENDING).
//   - SecretsManager serves a Store over the Secrets Manager AWS JSON 1.1
//     protocol on 127.0.0.1, for the real aws-sdk-go-v2 client, and counts
//     calls and injects faults (throttling, 5xx, delays, a refused endpoint).
//     It can enforce the service's quotas (SetQuota: a token bucket per
//     operation answering ThrottlingException) and counts requests per
//     second, served and throttled (RequestRates), so a test can measure what
//     a fleet of clients does to the account's quota.
//   - Rotator runs the steps of AWS's MySQLSingleUser and MySQLMultiUser
//     rotations against a real MySQL or MariaDB server, so that a test can
//     open the window in which the database accepts only the new password.
//     Its Keys field rotates secrets in other JSON shapes ({"DB_USER":...}).
//   - IAMFront is a MySQL endpoint that logs clients in with RDS IAM
//     authentication tokens, checked as RDS checks them (TLS,
//     mysql_clear_password, the SigV4 signature, user, endpoint, region and
//     expiry against its own clock), and then relays their sessions to a real
//     MySQL or MariaDB server.
//
// Nothing here needs a *testing.T: constructors return errors and fakes have
// Close methods, so a demo program can use them too.
//
//	sm, err := rotatingmysqltest.NewSecretsManager()
//	if err != nil { ... }
//	defer sm.Close()
//	sm.Store().CreateSecret("app/db", rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "pw", "appdb"))
//	client := secretsmanager.NewFromConfig(sm.AWSConfig())
//	// or, for code calling config.LoadDefaultConfig: for k, v := range sm.Env() { t.Setenv(k, v) }
//	sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "ThrottlingException", Times: 2})
//	sm.SetQuota("GetSecretValue", rotatingmysqltest.Quota{Rate: 100}) // 100 requests/s, then ThrottlingException
//	for _, r := range sm.RequestRates("GetSecretValue") { fmt.Println(r.Start, r.Accepted, r.Throttled) }
package rotatingmysqltest
