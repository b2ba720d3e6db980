package credsource

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// quotedRun matches the JSON strings of a body long enough to be a secret.
var quotedRun = regexp.MustCompile(`"([^"\\]{8,})"`)

// agentFieldNames may appear in parse errors: they are the answer's field
// names, not its values.
var agentFieldNames = map[string]bool{
	"ARN": true, "Name": true, "VersionId": true, "SecretString": true,
	"SecretBinary": true, "VersionStages": true, "CreatedDate": true,
}

// FuzzParseAgentResponse feeds parseAgentResponse arbitrary agent answers,
// seeded from its table test: it never panics, its errors describe the
// answer without quoting it (the answer holds a password), and what it
// accepts is copied faithfully.
func FuzzParseAgentResponse(f *testing.F) {
	for _, tc := range agentResponseCases {
		f.Add(tc.body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		out, err := parseAgentResponse([]byte(body))
		if err != nil {
			if out != nil {
				t.Fatalf("both a result and an error for %q", body)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "answer ") || len(msg) > 200 || !utf8.ValidString(msg) {
				t.Fatalf("unexpected error text %q for %q", msg, body)
			}
			for _, m := range quotedRun.FindAllStringSubmatch(body, -1) {
				if !agentFieldNames[m[1]] && strings.Contains(msg, m[1]) {
					t.Fatalf("error %q quotes the answer's value %q", msg, m[1])
				}
			}
			return
		}
		if out == nil {
			t.Fatalf("no result and no error for %q", body)
		}
		// What it accepts is a JSON object (between white space, which
		// the parser trims as bytes.TrimSpace does), and the SecretString
		// it returns is the one the answer holds.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(bytes.TrimSpace([]byte(body)), &fields); err != nil {
			t.Fatalf("accepted %q, which is not a JSON object: %v", body, err)
		}
		var key string
		n := 0
		for k := range fields {
			if strings.EqualFold(k, "SecretString") {
				key, n = k, n+1
			}
		}
		if n == 1 && string(fields[key]) != "null" {
			var want string
			if err := json.Unmarshal(fields[key], &want); err != nil {
				t.Fatalf("accepted a SecretString that is not a string: %q", body)
			}
			if out.SecretString == nil || *out.SecretString != want {
				t.Fatalf("SecretString %v, want %q, for %q", out.SecretString, want, body)
			}
		}
	})
}
