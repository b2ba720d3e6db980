package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// iamPermissions are what the drill needs on the secret in -aws mode.
const iamPermissions = `The drill needs these IAM permissions on the secret:
  secretsmanager:DescribeSecret      (check the rotation, follow its steps)
  secretsmanager:GetSecretValue      (the workers read the credentials)
  secretsmanager:RotateSecret        (start the rotation)
  lambda:InvokeFunction              on the rotation function (RotateSecret requires it of the caller)
plus kms:Decrypt on the secret's KMS key when it is not aws/secretsmanager.`

// errRefused marks a secret the drill will not rotate.
var errRefused = errors.New("refused")

// awsTarget prepares the drill on a real secret: it checks that rotation is
// configured and that no rotation is under way, and reads the secret once
// for the plain driver.
func awsTarget(ctx context.Context, o *options) (*target, error) {
	var cfg aws.Config
	if o.awsConfig != nil {
		cfg = *o.awsConfig
	} else {
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx); err != nil {
			return nil, fmt.Errorf("AWS configuration: %w", err)
		}
	}
	if cfg.Region == "" {
		if a, err := arn.Parse(o.secret); err == nil {
			cfg.Region = a.Region
		}
	}
	client := secretsmanager.NewFromConfig(cfg)
	d, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(o.secret)})
	if err != nil {
		return nil, awsError("DescribeSecret", o.secret, err)
	}
	if !aws.ToBool(d.RotationEnabled) {
		return nil, fmt.Errorf("%w: secret %s has no rotation configured (DescribeSecret: RotationEnabled is false).\n"+
			"The drill starts the secret's own rotation: configure it first, on a staging secret, "+
			"with the console or aws secretsmanager rotate-secret --rotation-lambda-arn.\n%s", errRefused, o.secret, iamPermissions)
	}
	cur, pend := stageHolders(d.VersionIdsToStages)
	if pend != "" && pend != cur {
		return nil, fmt.Errorf("%w: secret %s has a rotation under way or stuck: AWSPENDING is on version %s, AWSCURRENT on %s. "+
			"Let it finish, or fix it (see the rotation function's logs) before drilling", errRefused, o.secret, pend, cur)
	}

	read := &credsource.SecretsManager{SecretID: o.secret, AWSConfig: &cfg}
	first, err := read.Fetch(ctx, credsource.Request{Stage: credsource.Current})
	if err != nil {
		return nil, awsError("GetSecretValue", o.secret, err)
	}
	creds := first.Creds
	var host string
	var port int
	if o.host != "" {
		host, port, err = splitHostPort(o.host)
		if err != nil {
			return nil, err
		}
		creds.Host = host
		if port != 0 {
			creds.Port = port
		}
	}
	plain, err := plainConfig(creds)
	if err != nil {
		return nil, err
	}
	return &target{
		describe: fmt.Sprintf("the database of secret %s (%s), AWS Secrets Manager in %s", aws.ToString(d.Name), plain.Addr, cfg.Region),
		secretID: o.secret,
		connector: func() (*rotatingmysql.Connector, error) {
			c := rotatingmysql.NewConfig(o.secret)
			c.Host, c.Port = host, port
			if err := c.Apply(rotatingmysql.WithAWSConfig(cfg), rotatingmysql.WithLogger(o.logger), rotatingmysql.WithTracer(o.tracer)); err != nil {
				return nil, err
			}
			return rotatingmysql.NewConnector(c)
		},
		plain:    plain,
		rotation: &awsRotation{client: client, secret: o.secret, current: cur, timeout: o.timeout, poll: o.poll},
		apiCalls: func(c *rotatingmysql.Connector) int {
			n := 0
			for _, v := range c.Stats().Fetches {
				n += int(v)
			}
			return n
		},
		apiCallsFrom: "GetSecretValue calls by rotatingmysql (Connector.Stats().Fetches; SDK retries not included)",
		close:        func() error { return nil },
	}, nil
}

// awsRotation starts the secret's rotation and follows it with
// DescribeSecret: RotateSecret called, AWSPENDING created (createSecret
// done; setSecret, testSecret and finishSecret run while it is pending),
// AWSCURRENT moved.
type awsRotation struct {
	client  *secretsmanager.Client
	secret  string
	current string // the version AWSCURRENT is on before the rotation
	timeout time.Duration
	poll    time.Duration
}

func (a *awsRotation) rotate(ctx context.Context, mark func(string)) error {
	mark(stepRequested)
	if _, err := a.client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(a.secret)}); err != nil {
		return awsError("RotateSecret", a.secret, err)
	}
	deadline := time.Now().Add(a.timeout)
	pending := ""
	for {
		d, err := a.client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(a.secret)})
		if err != nil {
			return awsError("DescribeSecret", a.secret, err)
		}
		cur, pend := stageHolders(d.VersionIdsToStages)
		if cur != a.current {
			a.current = cur
			return nil
		}
		if pend != "" && pend != cur && pending == "" {
			pending = pend
			mark(stepPending)
		}
		if time.Now().After(deadline) {
			if pending == "" {
				return fmt.Errorf("rotation did not start within %v: no AWSPENDING version appeared (is the rotation function invoked? see its logs)", a.timeout)
			}
			return fmt.Errorf("rotation stuck: not finished within %v, AWSPENDING is on version %s and AWSCURRENT still on %s (see the rotation function's logs)", a.timeout, pending, cur)
		}
		if err := sleep(ctx, a.poll); err != nil {
			return err
		}
	}
}

// stageHolders returns the versions holding AWSCURRENT and AWSPENDING.
func stageHolders(versions map[string][]string) (current, pending string) {
	for id, stages := range versions {
		if slices.Contains(stages, string(credsource.Current)) {
			current = id
		}
		if slices.Contains(stages, string(credsource.Pending)) {
			pending = id
		}
	}
	return current, pending
}

// awsError explains an API error, adding the permissions the drill needs
// when access was denied.
func awsError(op, secret string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "AccessDeniedException" || ae.ErrorCode() == "AccessDenied") {
		return fmt.Errorf("%s on secret %s: %w\n%s", op, secret, err, iamPermissions)
	}
	return fmt.Errorf("%s on secret %s: %w", op, secret, err)
}

// splitHostPort reads host or host:port.
func splitHostPort(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return s, 0, nil // no port
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("-host %q: bad port", s)
	}
	return host, port, nil
}
