package credsource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SecretError says what is wrong with a secret's content. It names the
// secret, the version and the field, never the value.
type SecretError struct {
	SecretID  string
	VersionID string
	Field     string // empty when the whole document is at fault
	Reason    string
}

func (e *SecretError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "secret %q", e.SecretID)
	if e.VersionID != "" {
		fmt.Fprintf(&b, " (version %s)", e.VersionID)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %q", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Keys names the JSON keys a secret's fields are read from, for secrets not
// in the RDS shape ({"DB_USER":...,"DB_PASSWORD":...}). An empty field
// means the RDS key: "username", "password", "host", "port", "dbname".
type Keys struct {
	Username string
	Password string
	Host     string
	Port     string
	DBName   string
}

// DefaultKeys are the keys of the RDS secret JSON.
var DefaultKeys = Keys{Username: "username", Password: "password", Host: "host", Port: "port", DBName: "dbname"}

// WithDefaults returns k with every empty key set to the RDS one.
func (k Keys) WithDefaults() Keys {
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&k.Username, DefaultKeys.Username}, {&k.Password, DefaultKeys.Password}, {&k.Host, DefaultKeys.Host},
		{&k.Port, DefaultKeys.Port}, {&k.DBName, DefaultKeys.DBName},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
	return k
}

// EngineKey is the JSON key the engine is read from; no configured key may
// be it.
const EngineKey = "engine"

// Validate reports two fields read from one key, which would make one of
// them hold the other's value, and a key that is the fixed "engine" key
// (passwordKey=engine would copy the password into Engine).
func (k Keys) Validate() error {
	k = k.WithDefaults()
	seen := map[string]string{EngineKey: "engine"}
	for _, f := range []struct{ name, key string }{
		{"username", k.Username}, {"password", k.Password}, {"host", k.Host}, {"port", k.Port}, {"dbname", k.DBName},
	} {
		if other, dup := seen[f.key]; dup {
			return fmt.Errorf("the %s and the %s are both read from the JSON key %q", other, f.name, f.key)
		}
		seen[f.key] = f.name
	}
	return nil
}

// custom reports whether some key differs from the RDS one.
func (k Keys) custom() bool { return k.WithDefaults() != DefaultKeys }

// ParseCredentials reads the RDS secret JSON (engine, host, port, username,
// password, dbname; port as a number or a string) from a SecretString.
// Unknown fields are ignored. secretID and versionID only name the secret in
// errors. The error never quotes the document, which holds a password.
func ParseCredentials(secretID, versionID string, doc []byte) (Credentials, error) {
	return Keys{}.Parse(secretID, versionID, doc)
}

// Parse reads a secret JSON whose fields are under the keys k names (the
// RDS keys for the empty ones); see ParseCredentials. Errors name the key
// the secret lacks, as configured ("DB_USER"), never a value.
func (k Keys) Parse(secretID, versionID string, doc []byte) (Credentials, error) {
	if err := k.Validate(); err != nil {
		return Credentials{}, &SecretError{SecretID: secretID, VersionID: versionID, Reason: "keys misconfigured: " + err.Error()}
	}
	custom := k.custom()
	k = k.WithDefaults()
	shape := "the RDS JSON format ({\"username\":...,\"password\":...})"
	if custom {
		shape = fmt.Sprintf("a JSON object with the keys %q and %q", k.Username, k.Password)
	}
	bad := func(field, reason string) (Credentials, error) {
		return Credentials{}, &SecretError{SecretID: secretID, VersionID: versionID, Field: field, Reason: reason}
	}
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 {
		return bad("", "SecretString is empty; rotatingmysql needs "+shape)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return bad("", fmt.Sprintf("SecretString is not valid JSON (syntax error at byte %d); rotatingmysql needs %s", se.Offset, shape))
		}
		return bad("", "SecretString is not a JSON object; rotatingmysql needs "+shape)
	}
	var c Credentials
	str := func(name string, dst *string) error {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return &SecretError{SecretID: secretID, VersionID: versionID, Field: name, Reason: "must be a JSON string"}
		}
		return nil
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{EngineKey, &c.Engine}, {k.Host, &c.Host}, {k.Username, &c.Username}, {k.Password, &c.Password}, {k.DBName, &c.DBName}} {
		if err := str(f.name, f.dst); err != nil {
			return Credentials{}, err
		}
	}
	missing := "missing or empty"
	if custom {
		// The key is the user's own choice: say which settings named the
		// keys (the secret's own keys are not listed: a malformed secret
		// could hold a password in one).
		missing = "missing or empty (keys configured: " + k.String() + ")"
	}
	if c.Username == "" {
		return bad(k.Username, missing)
	}
	if c.Password == "" {
		return bad(k.Password, missing)
	}
	if raw, ok := fields[k.Port]; ok && string(raw) != "null" {
		port, reason := parsePort(raw)
		if reason != "" {
			return bad(k.Port, reason)
		}
		c.Port = port
	}
	remember(c.Password)
	return c, nil
}

// String lists the keys as the DSN parameters that set them.
func (k Keys) String() string {
	k = k.WithDefaults()
	return fmt.Sprintf("usernameKey=%s passwordKey=%s hostKey=%s portKey=%s dbnameKey=%s", k.Username, k.Password, k.Host, k.Port, k.DBName)
}

// parsePort accepts 3306 or "3306", as RDS secrets carry either.
func parsePort(raw json.RawMessage) (int, string) {
	var n float64
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, "must be a number or a numeric string"
		}
		if s == "" {
			return 0, ""
		}
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, "must be a number or a numeric string"
		}
		n = float64(i)
	}
	if n != math.Trunc(n) || n < 1 || n > 65535 {
		return 0, "must be a whole number from 1 to 65535"
	}
	return int(n), ""
}
