package credsource

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// Sentinel errors for AWS conditions a caller (or an operator reading the
// message) can fix; the SDK's error stays wrapped beside them.
var (
	// ErrNoAWSCredentials means the SDK's default credential chain found no
	// credentials: no environment keys, no profile, no web identity, no
	// container credentials and no EC2 instance role.
	ErrNoAWSCredentials = errors.New("no AWS credentials found")

	// ErrNoRegion means no AWS region was configured and the secret id is
	// not an ARN that names one.
	ErrNoRegion = errors.New("no AWS region")

	// ErrAccessDenied means AWS refused the request for lack of permission
	// (AccessDeniedException, or a KMS key the identity may not use).
	ErrAccessDenied = errors.New("access denied")
)

// credentialChain names the providers the SDK's default chain tries, in
// its order.
const credentialChain = "environment, shared config/credentials files, web identity, ECS/EKS container credentials, EC2 instance role"

// noCredentialsFix says how to give the process credentials.
const noCredentialsFix = "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run with a role (instance profile, task role, IRSA or EKS Pod Identity), or read the secret without the API: source=env, source=file or source=agent"

// noRegionFix says how to give the region.
const noRegionFix = "set AWS_REGION or region= in the DSN (Go: Config.Region), or pass the secret's full ARN"

// noCredentials reports whether err says that the SDK's default credential
// chain ran out of providers: its last one, the EC2 instance role, failed
// (no instance metadata service, IMDS disabled, or no role attached). It
// looks at the SDK's error types, not at its text.
func noCredentials(err error) bool {
	return findErr(err, func(e error) bool {
		op, ok := e.(*smithy.OperationError)
		return ok && op.ServiceID == "ec2imds"
	})
}

// findErr reports whether match holds for some error of err's tree, each
// tested alone (errors.As would stop at the first of a type).
func findErr(err error, match func(error) bool) bool {
	for err != nil {
		if match(err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if findErr(e, match) {
					return true
				}
			}
			return false
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return false
		}
	}
	return false
}

// noCredentialsError is the error for a request the SDK could not sign for
// want of credentials.
func noCredentialsError(what string, err error) error {
	return fmt.Errorf("%s: %w (tried: %s): %s; AWS SDK: %w", what, ErrNoAWSCredentials, credentialChain, noCredentialsFix, err)
}

// apiErrorHint explains the Secrets Manager errors whose cause has a known
// fix, or returns nil. id is the secret id, region the region asked.
func apiErrorHint(id string, stage Stage, region string, err error) error {
	what := fmt.Sprintf("secret %q stage %s", id, stage)
	var nf *types.ResourceNotFoundException
	var df *types.DecryptionFailure
	var api smithy.APIError
	switch {
	case noCredentials(err):
		return noCredentialsError(what, err)
	case errors.As(err, &nf):
		if stage == Current || stage == "" {
			return fmt.Errorf("%s: %w: Secrets Manager in region %s has no secret %q (check the name and the region: a secret in another region or account is read by its full ARN); AWS: %w",
				what, ErrNotFound, orUnknown(region), id, err)
		}
		return fmt.Errorf("%s: %w: no version of secret %q in region %s is labelled %s; AWS: %w", what, ErrNotFound, id, orUnknown(region), stage, err)
	case errors.As(err, &df):
		return fmt.Errorf("%s: %w: Secrets Manager could not decrypt the secret with its KMS key: the AWS identity needs kms:Decrypt on that key (a customer managed key's key policy must allow it too); AWS: %w",
			what, ErrAccessDenied, err)
	case errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException":
		return fmt.Errorf("%s: %w: the AWS identity needs the IAM action secretsmanager:GetSecretValue on %s, and kms:Decrypt on the secret's KMS key when it is a customer managed key (not aws/secretsmanager); a secret in another account also needs a resource policy; AWS: %w",
			what, ErrAccessDenied, secretResource(id, region), err)
	}
	return nil
}

// secretResource is the IAM resource of a secret: its ARN, or the pattern
// of the ARNs a name may have (Secrets Manager adds six random characters).
func secretResource(id, region string) string {
	if a, err := arn.Parse(id); err == nil && a.Service == "secretsmanager" {
		return id
	}
	return fmt.Sprintf("arn:aws:secretsmanager:%s:ACCOUNT_ID:secret:%s-*", orUnknown(region), id)
}

func orUnknown(region string) string {
	if region == "" {
		return "(unknown)"
	}
	return region
}

// also is err that errors.Is also finds sentinel in, without its text.
type also struct{ err, sentinel error }

func (e *also) Error() string   { return e.err.Error() }
func (e *also) Unwrap() []error { return []error{e.err, e.sentinel} }
