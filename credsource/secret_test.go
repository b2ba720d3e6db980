package credsource

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const secretPW = "s3cr3t-P@ss"

var secretTests = []struct {
	name  string
	doc   string
	want  Credentials
	field string // field named by the error; "-" for a whole-document error
}{
	{name: "rds format", doc: `{"engine":"mysql","host":"db.example.com","port":3306,"username":"app","password":"` + secretPW + `","dbname":"orders","dbClusterIdentifier":"c1"}`,
		want: Credentials{Engine: "mysql", Host: "db.example.com", Port: 3306, Username: "app", Password: secretPW, DBName: "orders"}},
	{name: "port as string", doc: `{"username":"app","password":"` + secretPW + `","port":"3307","host":"h"}`,
		want: Credentials{Host: "h", Port: 3307, Username: "app", Password: secretPW}},
	{name: "rds managed: no host", doc: `{"username":"admin","password":"` + secretPW + `"}`,
		want: Credentials{Username: "admin", Password: secretPW}},
	{name: "null fields", doc: `{"username":"app","password":"` + secretPW + `","port":null,"dbname":null}`,
		want: Credentials{Username: "app", Password: secretPW}},
	{name: "punctuation and non-ascii password", doc: `{"username":"app","password":"p@ss/w:rd?#&=%'\"\\ ü€"}`,
		want: Credentials{Username: "app", Password: `p@ss/w:rd?#&=%'"\ ü€`}},
	{name: "not json", doc: "user=app password=" + secretPW, field: "-"},
	{name: "truncated json", doc: `{"username":"app","password":"` + secretPW, field: "-"},
	{name: "json array", doc: `["app","` + secretPW + `"]`, field: "-"},
	{name: "empty", doc: "  ", field: "-"},
	{name: "missing username", doc: `{"password":"` + secretPW + `"}`, field: "username"},
	{name: "missing password", doc: `{"username":"app"}`, field: "password"},
	{name: "empty password", doc: `{"username":"app","password":""}`, field: "password"},
	{name: "username wrong type", doc: `{"username":7,"password":"` + secretPW + `"}`, field: "username"},
	{name: "password wrong type", doc: `{"username":"app","password":["` + secretPW + `"]}`, field: "password"},
	{name: "port out of range", doc: `{"username":"app","password":"` + secretPW + `","port":70000}`, field: "port"},
	{name: "port zero", doc: `{"username":"app","password":"` + secretPW + `","port":0}`, field: "port"},
	{name: "port fraction", doc: `{"username":"app","password":"` + secretPW + `","port":3306.5}`, field: "port"},
	{name: "port word", doc: `{"username":"app","password":"` + secretPW + `","port":"mysql"}`, field: "port"},
	{name: "port bool", doc: `{"username":"app","password":"` + secretPW + `","port":true}`, field: "port"},
	{name: "huge value", doc: `{"username":"app","password":"` + secretPW + `","dbname":"` + strings.Repeat("x", 1<<20) + `"}`,
		want: Credentials{Username: "app", Password: secretPW, DBName: strings.Repeat("x", 1<<20)}},
}

// customKeys is the key mapping of the keyTests.
var customKeys = Keys{Username: "DB_USER", Password: "DB_PASSWORD", Host: "DB_HOST", Port: "DB_PORT", DBName: "DB_NAME"}

// keyTests read secrets in other shapes with customKeys (or only some keys
// changed); field is the key the error names, "-" for the whole document.
var keyTests = []struct {
	name  string
	keys  Keys
	doc   string
	want  Credentials
	field string
}{
	{name: "all keys mapped", keys: customKeys,
		doc:  `{"DB_USER":"app","DB_PASSWORD":"` + secretPW + `","DB_HOST":"db.example.com","DB_PORT":"3307","DB_NAME":"orders","username":"ignored"}`,
		want: Credentials{Host: "db.example.com", Port: 3307, Username: "app", Password: secretPW, DBName: "orders"}},
	{name: "user and pass only", keys: Keys{Username: "user", Password: "pass"},
		doc:  `{"user":"app","pass":"` + secretPW + `","host":"h","port":3306}`,
		want: Credentials{Host: "h", Port: 3306, Username: "app", Password: secretPW}},
	{name: "keys with dots and spaces", keys: Keys{Username: "db.user name", Password: "db.pass"},
		doc:  `{"db.user name":"app","db.pass":"` + secretPW + `"}`,
		want: Credentials{Username: "app", Password: secretPW}},
	{name: "rds keys absent under a mapping", keys: customKeys, doc: `{"username":"app","password":"` + secretPW + `"}`, field: "DB_USER"},
	{name: "mapped password missing", keys: customKeys, doc: `{"DB_USER":"app","password":"` + secretPW + `"}`, field: "DB_PASSWORD"},
	{name: "mapped port bad", keys: customKeys, doc: `{"DB_USER":"app","DB_PASSWORD":"` + secretPW + `","DB_PORT":"x"}`, field: "DB_PORT"},
	{name: "mapped user wrong type", keys: customKeys, doc: `{"DB_USER":1,"DB_PASSWORD":"` + secretPW + `"}`, field: "DB_USER"},
	{name: "not json under a mapping", keys: customKeys, doc: `DB_USER=app`, field: "-"},
}

func TestKeysParse(t *testing.T) {
	for _, tt := range keyTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.Parse("prod/app", "v1", []byte(tt.doc))
			if tt.field == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %v %v, want %v", got, err, tt.want)
				}
				return
			}
			var se *SecretError
			if !errors.As(err, &se) || (tt.field != "-" && se.Field != tt.field) {
				t.Fatalf("error %v, want a SecretError naming %q", err, tt.field)
			}
			if strings.HasPrefix(se.Reason, "missing") && !strings.Contains(err.Error(), "passwordKey=DB_PASSWORD") && tt.keys == customKeys {
				t.Errorf("error %q does not name the configured keys", err)
			}
			if strings.Contains(err.Error(), secretPW) || strings.Contains(err.Error(), "P@") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestKeysValidate(t *testing.T) {
	if err := (Keys{}).Validate(); err != nil {
		t.Errorf("zero keys: %v", err)
	}
	if err := (Keys{Username: "password"}).Validate(); err == nil || !strings.Contains(err.Error(), `"password"`) {
		t.Errorf("username read from the password key: %v", err)
	}
	if got := (Keys{Password: "pw"}).WithDefaults(); got.Password != "pw" || got.Username != "username" {
		t.Errorf("WithDefaults: %+v", got)
	}
}

func FuzzKeysParse(f *testing.F) {
	for _, tt := range keyTests {
		f.Add(tt.doc, tt.keys.Username, tt.keys.Password)
	}
	f.Fuzz(func(t *testing.T, doc, userKey, passKey string) {
		k := Keys{Username: userKey, Password: passKey}
		c, err := k.Parse("id", "v", []byte(doc))
		checkParsed(t, doc, c, err)
	})
}

func TestParseCredentials(t *testing.T) {
	for _, tt := range secretTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCredentials("prod/app", "v1", []byte(tt.doc))
			if tt.field == "" {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				if got != tt.want {
					t.Fatalf("got %#v, want %#v (passwords equal: %v)", got, tt.want, got.Password == tt.want.Password)
				}
				return
			}
			var se *SecretError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want *SecretError", err)
			}
			if se.SecretID != "prod/app" || se.VersionID != "v1" || (tt.field != "-" && se.Field != tt.field) || (tt.field == "-" && se.Field != "") {
				t.Errorf("error names %q field %q, want field %q", se.SecretID, se.Field, tt.field)
			}
			if strings.Contains(err.Error(), secretPW) || strings.Contains(err.Error(), "P@") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func FuzzParseCredentials(f *testing.F) {
	for _, tt := range secretTests {
		if len(tt.doc) < 4096 {
			f.Add(tt.doc)
		}
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseCredentials("id", "v", []byte(doc))
		checkParsed(t, doc, c, err)
	})
}

// checkParsed is what every parse of any document must come to: a
// *SecretError, or credentials a login can use.
func checkParsed(t *testing.T, doc string, c Credentials, err error) {
	t.Helper()
	if err != nil {
		var se *SecretError
		if !errors.As(err, &se) {
			t.Fatalf("error %T %v is not a *SecretError", err, err)
		}
		return
	}
	if c.Username == "" || c.Password == "" || c.Port < 0 || c.Port > 65535 {
		t.Fatalf("accepted unusable credentials from %q", doc)
	}
}

func TestCredentialsFormatRedacts(t *testing.T) {
	c := Credentials{Username: "app", Password: secretPW, Host: "h"}
	s := &Secret{ID: "x", Creds: c}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%X"} {
		for _, v := range []any{c, &c, s, *s} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, secretPW) || strings.Contains(out, fmt.Sprintf("%x", secretPW)) {
				t.Errorf("fmt %s of %T leaks the password: %s", verb, v, out)
			}
		}
	}
}
