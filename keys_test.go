package rotatingmysql_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// dbKeys is the shape of the key-mapping tests' secrets.
var dbKeys = credsource.Keys{Username: "DB_USER", Password: "DB_PASSWORD", Host: "DB_HOST"}

const dbKeysParams = "usernameKey=DB_USER&passwordKey=DB_PASSWORD&hostKey=DB_HOST"

// customSecret returns the bed's secret in the {"DB_USER","DB_PASSWORD",
// "DB_HOST"} shape (port and dbname under their RDS keys), with an
// unrelated field.
func (b *bed) customSecret(password string) string {
	doc, _ := json.Marshal(map[string]any{"DB_USER": b.user, "DB_PASSWORD": password, "DB_HOST": b.host, "port": b.port, "dbname": b.db, "owner": "team-a"})
	return string(doc)
}

// TestSecretKeysRotationUnderLoad: a secret {"DB_USER","DB_PASSWORD",
// "DB_HOST"} in the Secrets Manager emulator, read with the key parameters
// in the DSN, goes through a full single-user rotation (written under the
// same keys) while 8 workers dial: 0 errors.
func TestSecretKeysRotationUnderLoad(t *testing.T) {
	t.Parallel()
	b := newBed(t, "keys-Initial-Pw-1")
	if _, err := b.sm.Store().PutSecretValue(b.arn, b.customSecret(b.password), nil); err != nil {
		t.Fatal(err)
	}
	b.rot.Keys = rotatingmysqltest.Keys(dbKeys)
	b.rot.Pause = 300 * time.Millisecond
	db := b.openParams(dbKeysParams + "&ttl=200ms") // the emulator's aws.Config in Go, not the environment
	ping(t, db)
	l := startLoad(db, 8)
	err := b.rot.Rotate(context.Background())
	time.Sleep(300 * time.Millisecond)
	l.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	// The rotation kept the shape: no RDS keys appeared.
	v, err := b.sm.Store().GetSecretValue(b.arn, "", rotatingmysqltest.StageCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v.SecretString, `"password"`) || strings.Contains(v.SecretString, "keys-Initial-Pw-1") {
		t.Fatalf("rotation did not write the new password under DB_PASSWORD")
	}
	// A pool opened after the rotation logs in with the new password.
	fresh := b.open(rotatingmysql.WithSecretKeys(dbKeys))
	ping(t, fresh)
}

// TestSecretKeysEverySource: the same mapping reads the secret from the
// agent, an environment variable and a file; without it, and with a key
// the secret lacks, the error names the key that was looked for.
func TestSecretKeysEverySource(t *testing.T) {
	// Serial: sets environment variables (t.Setenv).
	b := newBed(t, "keys-Sources-Pw-2")
	doc := b.customSecret(b.password)
	if _, err := b.sm.Store().PutSecretValue(b.arn, doc, nil); err != nil {
		t.Fatal(err)
	}
	startAgent(t, b.sm.Store())
	t.Setenv("ROTATINGMYSQL_KEYS_SECRET", doc)
	path := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{b.arn + "?source=agent", "ROTATINGMYSQL_KEYS_SECRET?source=env", path + "?source=file"} {
		ping(t, openDSNNoAWS(t, base+"&"+dbKeysParams))

		err := openDSNNoAWS(t, base).Ping()
		var se *credsource.SecretError
		if !errors.As(err, &se) || se.Field != "username" {
			t.Errorf("%s without the key parameters: %v, want a SecretError naming username", base, err)
		}
		err = openDSNNoAWS(t, base+"&usernameKey=DB_LOGIN&passwordKey=DB_PASSWORD").Ping()
		if !errors.As(err, &se) || se.Field != "DB_LOGIN" || !strings.Contains(err.Error(), "usernameKey=DB_LOGIN") {
			t.Errorf("%s with a key the secret lacks: %v, want a SecretError naming DB_LOGIN", base, err)
		}
		if findSecret(err.Error(), []string{b.password}) != "" {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
