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

// ParseCredentials reads the RDS secret JSON (engine, host, port, username,
// password, dbname; port as a number or a string) from a SecretString.
// Unknown fields are ignored. secretID and versionID only name the secret in
// errors. The error never quotes the document, which holds a password.
func ParseCredentials(secretID, versionID string, doc []byte) (Credentials, error) {
	bad := func(field, reason string) (Credentials, error) {
		return Credentials{}, &SecretError{SecretID: secretID, VersionID: versionID, Field: field, Reason: reason}
	}
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 {
		return bad("", "SecretString is empty; rotatingmysql needs the RDS JSON format ({\"username\":...,\"password\":...})")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return bad("", fmt.Sprintf("SecretString is not valid JSON (syntax error at byte %d); rotatingmysql needs the RDS JSON format", se.Offset))
		}
		return bad("", "SecretString is not a JSON object; rotatingmysql needs the RDS JSON format")
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
	}{{"engine", &c.Engine}, {"host", &c.Host}, {"username", &c.Username}, {"password", &c.Password}, {"dbname", &c.DBName}} {
		if err := str(f.name, f.dst); err != nil {
			return Credentials{}, err
		}
	}
	if c.Username == "" {
		return bad("username", "missing or empty")
	}
	if c.Password == "" {
		return bad("password", "missing or empty")
	}
	if raw, ok := fields["port"]; ok && string(raw) != "null" {
		port, reason := parsePort(raw)
		if reason != "" {
			return bad("port", reason)
		}
		c.Port = port
	}
	return c, nil
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
