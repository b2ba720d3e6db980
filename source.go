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
		}, nil
	},
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
