package credsource

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// Env is the Source that reads the secret JSON from an environment
// variable, as ECS injects a secret named in a task definition's "secrets".
// Each Fetch reads the variable again, so a forced refresh after a login
// failure sees a value the process has set since.
//
// The variable holds one version and no staging labels: asking for any
// stage but AWSCURRENT fails with an error wrapping ErrNoStages and
// ErrNotFound.
type Env struct {
	// Name is the variable's name.
	Name string
	// Keys names the JSON keys of the secret's fields; the zero value
	// reads the RDS keys (username, password, host, port, dbname).
	Keys Keys
}

var _ Source = (*Env)(nil)

// String names the source in logs and errors.
func (e *Env) String() string { return "env" }

// Fetch reads and parses the variable.
func (e *Env) Fetch(_ context.Context, req Request) (*Secret, error) {
	if err := singleVersion("environment variable "+e.Name, req.Stage); err != nil {
		return nil, err
	}
	v, ok := os.LookupEnv(e.Name)
	switch {
	case !ok:
		return nil, fmt.Errorf("environment variable %s is not set (source=env reads the secret JSON from the variable the DSN names)", e.Name)
	case strings.TrimSpace(v) == "":
		return nil, fmt.Errorf("environment variable %s is empty (source=env reads the secret JSON from the variable the DSN names)", e.Name)
	}
	creds, err := e.Keys.Parse(e.Name, "", []byte(v))
	if err != nil {
		return nil, Redact(fmt.Errorf("environment variable %s: %w", e.Name, err))
	}
	return &Secret{ID: e.Name, Source: "env", Creds: creds}, nil
}

// singleVersion is the answer of a source that holds one value (env, file)
// to a request for any stage but AWSCURRENT: an error wrapping ErrNoStages
// and ErrNotFound, so that the cache takes it for an answer, not a fault.
func singleVersion(what string, stage Stage) error {
	if stage == "" || stage == Current {
		return nil
	}
	return fmt.Errorf("%s: %w: %w: it holds a single value, there is no %s", what, ErrNoStages, ErrNotFound, stage)
}
