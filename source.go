package rotatingmysql

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// sourceFactories builds each named source from the Config. The DSN's
// source parameter picks one (or a comma-separated chain of them).
var sourceFactories = map[string]func(c *Config) (credsource.Source, error){
	"secretsmanager": func(c *Config) (credsource.Source, error) {
		return &credsource.SecretsManager{
			SecretID:  c.SecretID,
			Region:    c.Region,
			AWSConfig: c.AWSConfig,
			Client:    c.SecretsManagerClient,
			Keys:      c.Keys,

			ReplicaRegions: c.ReplicaRegions,
		}, nil
	},
	"agent": func(c *Config) (credsource.Source, error) {
		a := &credsource.Agent{SecretID: c.SecretID, Endpoint: c.AgentEndpoint, AllowRemote: c.AllowRemoteAgent, Token: c.AgentToken, Keys: c.Keys}
		// Refuse a bad endpoint (or port variable) at sql.Open, before any
		// request could carry the token there.
		if _, err := a.BaseURL(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidDSN, err)
		}
		return a, nil
	},
	"env": func(c *Config) (credsource.Source, error) {
		return &credsource.Env{Name: c.SecretID, Keys: c.Keys}, nil
	},
	"file": func(c *Config) (credsource.Source, error) {
		return &credsource.File{Path: c.SecretID, Keys: c.Keys}, nil
	},
	// iam signs RDS IAM authentication tokens; validateIAM has filled
	// User, Host, Port and DBName from SECRET_ID.
	"iam": func(c *Config) (credsource.Source, error) {
		return &credsource.IAM{User: c.User, Host: c.Host, Port: c.Port, DBName: c.DBName, Region: c.Region, AWSConfig: c.AWSConfig}, nil
	},
}

// localSources name SECRET_ID by something other than a secret's name or
// ARN (a variable name, a path, a login).
var localSources = map[string]bool{"env": true, "file": true, "iam": true}

// secretIDIsSecret reports whether some source of spec reads SECRET_ID as a
// Secrets Manager secret id (name or ARN), so that an "arn:" prefix must be a
// valid secret ARN.
func secretIDIsSecret(spec string) bool {
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if alias, ok := sourceAliases[name]; ok {
			name = alias
		}
		if !localSources[name] {
			return true
		}
	}
	return false
}

// sourceAliases are other accepted spellings of source names.
var sourceAliases = map[string]string{"": "secretsmanager", "api": "secretsmanager"}

// sourceFactory validates a source parameter and returns its builder.
func sourceFactory(spec string) (func(c *Config) (credsource.Source, error), error) {
	names := strings.Split(spec, ",")
	builders := make([]func(c *Config) (credsource.Source, error), 0, len(names))
	for _, name := range names {
		name = strings.TrimSpace(name)
		if alias, ok := sourceAliases[name]; ok {
			name = alias
		}
		b, ok := sourceFactories[name]
		if !ok {
			known := make([]string, 0, len(sourceFactories))
			for k := range sourceFactories {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("unknown source %q (known: %s)", name, strings.Join(known, ", "))
		}
		builders = append(builders, b)
	}
	if len(builders) == 1 {
		return builders[0], nil
	}
	return func(c *Config) (credsource.Source, error) {
		srcs := make([]credsource.Source, 0, len(builders))
		for _, b := range builders {
			s, err := b(c)
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, s)
		}
		return credsource.NewChain(srcs...), nil
	}, nil
}

// newSource builds the configured source.
func (c *Config) newSource() (credsource.Source, error) {
	if c.CredentialSource != nil {
		return c.CredentialSource, nil
	}
	build, err := sourceFactory(c.Source)
	if err != nil {
		return nil, fmt.Errorf("%w: parameter \"source\": %w", ErrInvalidDSN, err)
	}
	return build(c)
}
