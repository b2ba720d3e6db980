package credsource

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
)

// Redacted replaces secret material in the text of a redacted error.
const Redacted = "[redacted]"

// Redact returns err with secret material removed from its text, or nil
// for nil. Every error that crosses into the library from a dependency (the
// AWS SDK and its credential providers, the agent, a file, a variable, a
// custom Source) goes through it before it is returned, logged or kept.
//
// The text of the result has replaced: the values of JSON keys and
// key=value pairs whose name says secret (SecretAccessKey, SessionToken,
// Token, AccessKeyId, password, Signature, Credential...), the whole output
// of a credential_process the SDK could not parse, the values passed as
// secrets, the passwords and tokens this package has fetched lately, and
// the process's AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and agent token
// variables (those of at least 8 characters that are not a plain word,
// which would blank out the word in every message). Unwrap returns err itself, so errors.Is and errors.As still
// find the SDK's types (whose own Error text is theirs, not redacted: print
// the outer error).
//
// Redacting an error already redacted only adds the given secrets.
func Redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*redactedError); ok && len(secrets) == 0 {
		return err
	}
	text := redactText(err.Error(), err, secrets)
	return &redactedError{text: text, err: err}
}

// redactedError is an error whose text had its secrets replaced.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }

// Unwrap returns the original error, for errors.Is and errors.As.
func (e *redactedError) Unwrap() error { return e.err }

// Format prints the redacted text under every verb, so %+v and %#v do not
// reach the wrapped error's fields.
func (e *redactedError) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", e.text)
		return
	}
	_, _ = io.WriteString(f, e.text)
}

// GoString is the redacted text, for %#v.
func (e *redactedError) GoString() string { return fmt.Sprintf("%q", e.text) }

// textError is an error with a text of the library's own in front of (or in
// place of) its cause's: Unwrap reaches the cause.
type textError struct {
	text string
	err  error
}

func (e *textError) Error() string { return e.text }
func (e *textError) Unwrap() error { return e.err }

// WithText returns an error whose text is text and whose Unwrap returns
// err, so that a dependency's message that misleads (go-sql-driver's advice
// to allow clear-text passwords) or quotes secrets is replaced while
// errors.Is and errors.As still find its types.
func WithText(text string, err error) error { return &textError{text: text, err: err} }

var (
	// secretName matches a key name that says its value is secret.
	secretName = `[A-Za-z0-9_.-]*(?i:password|passwd|pwd|secret|token|signature|credential|accesskey|access_key|private|apikey|api_key)[A-Za-z0-9_.-]*`
	// jsonPair: "Name": "value" (the value may lack its closing quote when
	// the text was cut) or "Name": number, also with escaped quotes
	// (\"Name\":\"value\") as a quoted JSON document carries them.
	jsonPair = regexp.MustCompile(`(\\?"` + secretName + `\\?"\s*:\s*)(\\?"(?:[^"\\]|\\[^"])*(?:\\?"|$)|-?[0-9][0-9.eE+-]*)`)
	// kvPair: Name=value, as in query strings and ini files, and
	// Header-Name: value, as in HTTP headers (a hyphen in the name, so that
	// an ARN's "secret:NAME" and prose stay).
	kvPair = regexp.MustCompile(`\b(` + secretName + `\s*=\s*|[A-Za-z0-9_]+-` + secretName + `:\s*)([^\s&,;"'}\])]+)`)
)

// redactText replaces secret material in text; err, when not nil, is the
// error whose text it is, searched for errors known to quote secrets.
func redactText(text string, err error, secrets []string) string {
	var pe *processcreds.ProviderError
	if err != nil && errors.As(err, &pe) && quotesOutput(pe) {
		// "parse failed of process output: <the whole output>, error: ..."
		text = strings.ReplaceAll(text, pe.Error(),
			"process provider error: the credential_process printed output the SDK could not parse (not shown: it may hold credentials): "+parseReason(pe))
	}
	text = jsonPair.ReplaceAllString(text, "${1}\""+Redacted+"\"")
	text = kvPair.ReplaceAllStringFunc(text, func(m string) string {
		sub := kvPair.FindStringSubmatch(m)
		name, val := strings.TrimRight(sub[1], "=: \t"), sub[2]
		switch {
		case strings.EqualFold(name, "passwordKey"), // the DSN parameter naming a JSON key
			val == "true", val == "false", val == "0", val == "1":
			return m
		}
		return sub[1] + Redacted
	})
	for _, s := range knownSecrets(secrets) {
		text = strings.ReplaceAll(text, s, Redacted)
	}
	return text
}

// quotesOutput reports whether a credential_process error quotes the
// process's output: the SDK's parse failure does.
func quotesOutput(pe *processcreds.ProviderError) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var tp *time.ParseError
	return errors.As(pe.Err, &se) || errors.As(pe.Err, &te) || errors.As(pe.Err, &tp)
}

// parseReason says what was wrong with a credential_process output without
// quoting it.
func parseReason(pe *processcreds.ProviderError) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var tp *time.ParseError
	switch {
	case errors.As(pe.Err, &se):
		return fmt.Sprintf("not JSON (syntax error at byte %d)", se.Offset)
	case errors.As(pe.Err, &te):
		return fmt.Sprintf("field %s is a JSON %s, want %s", te.Field, te.Value, te.Type)
	case errors.As(pe.Err, &tp):
		return "Expiration is not an RFC 3339 time"
	}
	return "not the JSON the SDK expects"
}

// minKnownSecret is the shortest value replaced wherever it occurs: a
// shorter one would match ordinary words.
const minKnownSecret = 8

// replaceable reports whether v is replaced wherever it occurs: long
// enough, and not a word (letters only, shorter than 16), which would
// blank out the same word in the library's own messages ("password").
func replaceable(v string) bool {
	if len(v) < minKnownSecret {
		return false
	}
	if len(v) >= 16 {
		return true
	}
	for _, r := range v {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return true
		}
	}
	return false
}

// secretEnv are variables whose values are secret wherever they appear.
var secretEnv = []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}

// known holds the passwords and tokens this package has handled lately, so
// that an error quoting one (a custom Source, a proxy echoing a header) is
// redacted too. Bounded: the oldest are forgotten.
var known = struct {
	mu   sync.Mutex
	vals []string
	set  map[string]struct{}
}{set: make(map[string]struct{})}

const maxKnown = 64

// remember adds secret values to the set Redact replaces.
func remember(vals ...string) {
	known.mu.Lock()
	defer known.mu.Unlock()
	for _, v := range vals {
		if !replaceable(v) {
			continue
		}
		if _, ok := known.set[v]; ok {
			continue
		}
		if len(known.vals) == maxKnown {
			delete(known.set, known.vals[0])
			known.vals = append(known.vals[:0], known.vals[1:]...)
		}
		known.vals = append(known.vals, v)
		known.set[v] = struct{}{}
	}
}

// knownSecrets returns the values to replace: extra, the remembered ones
// and the secret variables', longest first (so a secret that contains
// another is replaced whole).
func knownSecrets(extra []string) []string {
	known.mu.Lock()
	out := make([]string, 0, len(extra)+len(known.vals)+len(secretEnv))
	out = append(out, known.vals...)
	known.mu.Unlock()
	for _, v := range extra {
		if replaceable(v) {
			out = append(out, v)
		}
	}
	for _, name := range secretEnv {
		v := os.Getenv(name)
		if p, ok := strings.CutPrefix(v, "file://"); ok && p != "" {
			continue // a path, not a secret
		}
		if replaceable(v) {
			out = append(out, v)
		}
	}
	// Longest first; few values, so a simple insertion sort.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
