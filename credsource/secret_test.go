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
	})
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
