package rotatingmysqltest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// Staging labels that Secrets Manager and rotation functions give meaning to.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"
)

// ARNPrefix is the start of every secret ARN the Store makes; the secret's name
// and a hyphen with six random alphanumerics follow it.
const ARNPrefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"

// Error is an error of the Secrets Manager API. Code is the AWS exception name
// (such as "ResourceNotFoundException") that the HTTP emulator puts in __type.
type Error struct {
	Code    string
	Message string
}

// Error returns the code and the message.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, ErrNotFound) works whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors to compare Store errors with errors.Is. Each carries the
// exception name the service answers with.
var (
	ErrNotFound         = &Error{Code: "ResourceNotFoundException"}
	ErrInvalidParameter = &Error{Code: "InvalidParameterException"}
	ErrInvalidRequest   = &Error{Code: "InvalidRequestException"}
	ErrExists           = &Error{Code: "ResourceExistsException"}
)

func errorf(kind *Error, format string, args ...any) error {
	return &Error{Code: kind.Code, Message: fmt.Sprintf(format, args...)}
}

// Version is one version of a secret. Exactly one of SecretString and
// SecretBinary is set.
type Version struct {
	VersionID    string
	SecretString string
	SecretBinary []byte
	CreatedDate  time.Time
	// Stages lists the staging labels attached to the version; a version
	// without any is deprecated.
	Stages []string
}

func (v *Version) clone() Version {
	c := *v
	c.SecretBinary = bytes.Clone(v.SecretBinary)
	c.Stages = slices.Clone(v.Stages)
	return c
}

// Rotation is a secret's rotation configuration.
type Rotation struct {
	Enabled bool
	// LambdaARN is the rotation function's ARN.
	LambdaARN string
	// AutomaticallyAfterDays is the rotation interval in days (0 when unset).
	AutomaticallyAfterDays int
}

// Description is what DescribeSecret reports about a secret.
type Description struct {
	ARN             string
	Name            string
	CreatedDate     time.Time
	LastChangedDate time.Time
	// VersionIDsToStages maps the versions that carry staging labels to them.
	VersionIDsToStages map[string][]string
	Rotation           Rotation
	// LastRotatedDate is zero until a rotation finished.
	LastRotatedDate time.Time
	// NextRotationDate is zero unless rotation is enabled with an interval.
	NextRotationDate time.Time
}

type secret struct {
	arn, name        string
	created, changed time.Time
	versions         []*Version // in creation order
	rotation         Rotation
	lastRotated      time.Time
}

func (s *secret) version(id string) *Version {
	for _, v := range s.versions {
		if v.VersionID == id {
			return v
		}
	}
	return nil
}

func (s *secret) holder(stage string) *Version {
	for _, v := range s.versions {
		if slices.Contains(v.Stages, stage) {
			return v
		}
	}
	return nil
}

// attach puts stage on v and takes it off any other version. Moving
// AWSCURRENT moves AWSPREVIOUS to the version it left, as the service does.
func (s *secret) attach(v *Version, stage string) {
	old := s.holder(stage)
	if old == v {
		return
	}
	if old != nil {
		old.Stages = slices.DeleteFunc(old.Stages, func(l string) bool { return l == stage })
	}
	v.Stages = append(v.Stages, stage)
	if stage == StageCurrent && old != nil {
		s.attach(old, StagePrevious)
	}
}

// Store is an in-memory Secrets Manager: secrets, their versions and staging
// labels, kept by the same rules as the service. It is safe for concurrent use.
// The zero value is not usable; call NewStore.
type Store struct {
	mu      sync.Mutex
	secrets map[string]*secret // by name
}

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{secrets: make(map[string]*secret)} }

// lookup finds a secret by name or by full ARN. The caller holds s.mu.
func (s *Store) lookup(id string) (*secret, error) {
	if id == "" {
		return nil, errorf(ErrInvalidParameter, "You must provide a SecretId.")
	}
	if sec, ok := s.secrets[id]; ok {
		return sec, nil
	}
	for _, sec := range s.secrets {
		if sec.arn == id {
			return sec, nil
		}
	}
	return nil, errorf(ErrNotFound, "Secrets Manager can't find the specified secret.")
}

// CreateSecret creates a secret whose first version holds secretString and
// carries AWSCURRENT. It returns the secret's ARN and the version's ID.
func (s *Store) CreateSecret(name, secretString string) (arn, versionID string, err error) {
	return s.create(name, "", &secretString, nil)
}

// CreateSecretWithARN creates a secret with the given full ARN (another
// account's or region's, as a cross-account secret has), named by the
// ARN's resource without its six-character suffix; it answers to that ARN
// and to the name. Its first version holds secretString and carries
// AWSCURRENT.
func (s *Store) CreateSecretWithARN(secretARN, secretString string) (versionID string, err error) {
	a, perr := arn.Parse(secretARN)
	name, ok := strings.CutPrefix(a.Resource, "secret:")
	if perr != nil || a.Service != "secretsmanager" || !ok || len(name) < 8 || name[len(name)-7] != '-' {
		return "", errorf(ErrInvalidParameter, "Invalid secret ARN %q.", secretARN)
	}
	name = name[:len(name)-7]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return "", errorf(ErrExists, "The operation failed because the secret %s already exists.", name)
	}
	now := time.Now()
	sec := &secret{arn: secretARN, name: name, created: now, changed: now}
	s.secrets[name] = sec
	v, err := s.put(sec, "", &secretString, nil, nil)
	if err != nil {
		delete(s.secrets, name)
		return "", err
	}
	return v.VersionID, nil
}

// create makes a secret; with neither value it has no version, as on the
// service.
func (s *Store) create(name, token string, str *string, bin []byte) (arn, versionID string, err error) {
	if name == "" || strings.HasPrefix(name, "arn:") {
		return "", "", errorf(ErrInvalidParameter, "Invalid name %q.", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return "", "", errorf(ErrExists, "The operation failed because the secret %s already exists.", name)
	}
	now := time.Now()
	sec := &secret{arn: ARNPrefix + name + "-" + randomAlnum(6), name: name, created: now, changed: now}
	s.secrets[name] = sec
	if str == nil && bin == nil {
		return sec.arn, "", nil
	}
	v, err := s.put(sec, token, str, bin, nil)
	if err != nil {
		delete(s.secrets, name)
		return "", "", err
	}
	return sec.arn, v.VersionID, nil
}

// PutSecretValue adds a version holding secretString to the secret named or
// ARN'd by id, with the given staging labels (AWSCURRENT when none). A label
// already on another version moves to the new one. It returns the version ID.
func (s *Store) PutSecretValue(id, secretString string, stages []string) (versionID string, err error) {
	v, err := s.putValue(id, "", &secretString, nil, stages)
	return v.VersionID, err
}

// PutSecretBinary is PutSecretValue for a binary-only version (SecretBinary set,
// no SecretString), such as a secret a MySQL client cannot use.
func (s *Store) PutSecretBinary(id string, secretBinary []byte, stages []string) (versionID string, err error) {
	if secretBinary == nil {
		secretBinary = []byte{}
	}
	v, err := s.putValue(id, "", nil, secretBinary, stages)
	return v.VersionID, err
}

func (s *Store) putValue(id, token string, str *string, bin []byte, stages []string) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return Version{}, err
	}
	v, err := s.put(sec, token, str, bin, stages)
	if err != nil {
		return Version{}, err
	}
	return v.clone(), nil
}

// put adds a version to sec. The caller holds s.mu. A token naming an existing
// version with the same value is an idempotent retry; with another value it is
// an error, as on the service.
func (s *Store) put(sec *secret, token string, str *string, bin []byte, stages []string) (*Version, error) {
	if (str == nil) == (bin == nil) {
		return nil, errorf(ErrInvalidParameter, "You must provide either SecretString or SecretBinary.")
	}
	if token != "" {
		if v := sec.version(token); v != nil {
			sameString := str != nil && v.SecretBinary == nil && v.SecretString == *str
			sameBinary := bin != nil && v.SecretBinary != nil && bytes.Equal(v.SecretBinary, bin)
			if sameString || sameBinary {
				return v, nil
			}
			return nil, errorf(ErrExists, "You can't modify an existing version, you can only create new versions.")
		}
	} else {
		token = newUUID()
	}
	for _, l := range stages {
		if l == "" || len(l) > 256 {
			return nil, errorf(ErrInvalidParameter, "Invalid staging label %q.", l)
		}
	}
	v := &Version{VersionID: token, SecretBinary: bytes.Clone(bin), CreatedDate: time.Now()}
	if str != nil {
		v.SecretString = *str
	}
	if len(stages) == 0 || sec.holder(StageCurrent) == nil {
		// The first version always gets AWSCURRENT; so does one put with no labels.
		stages = append(slices.Clone(stages), StageCurrent)
	}
	sec.versions = append(sec.versions, v)
	for _, l := range stages {
		sec.attach(v, l)
	}
	sec.changed = v.CreatedDate
	return v, nil
}

// UpdateSecretVersionStage moves stage to the version moveToVersionID,
// removing it from removeFromVersionID. As on the service, removeFromVersionID
// must name the label's current holder when there is one; an empty
// moveToVersionID only removes the label; moving AWSCURRENT moves AWSPREVIOUS
// to the version it left.
func (s *Store) UpdateSecretVersionStage(id, stage, moveToVersionID, removeFromVersionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return err
	}
	if stage == "" || moveToVersionID == "" && removeFromVersionID == "" {
		return errorf(ErrInvalidParameter, "You must provide VersionStage and MoveToVersionId or RemoveFromVersionId.")
	}
	holder := sec.holder(stage)
	if removeFromVersionID != "" && (holder == nil || holder.VersionID != removeFromVersionID) {
		return errorf(ErrInvalidParameter, "The staging label %s is not attached to version %s.", stage, removeFromVersionID)
	}
	if moveToVersionID == "" {
		if stage == StageCurrent {
			return errorf(ErrInvalidParameter, "You can't remove the staging label AWSCURRENT; move it to another version instead.")
		}
		holder.Stages = slices.DeleteFunc(holder.Stages, func(l string) bool { return l == stage })
		sec.changed = time.Now()
		return nil
	}
	to := sec.version(moveToVersionID)
	if to == nil {
		return errorf(ErrInvalidParameter, "Secrets Manager can't find version %s.", moveToVersionID)
	}
	if holder != nil && holder != to && removeFromVersionID == "" {
		return errorf(ErrInvalidParameter, "The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", stage, holder.VersionID)
	}
	sec.attach(to, stage)
	sec.changed = time.Now()
	return nil
}

// RemoveStage takes stage off whichever version carries it, as the service
// does with AWSPENDING once a rotation finished. Removing an absent label does
// nothing; AWSCURRENT cannot be removed.
func (s *Store) RemoveStage(id, stage string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return err
	}
	if stage == StageCurrent {
		return errorf(ErrInvalidParameter, "You can't remove the staging label AWSCURRENT; move it to another version instead.")
	}
	if v := sec.holder(stage); v != nil {
		v.Stages = slices.DeleteFunc(v.Stages, func(l string) bool { return l == stage })
		sec.changed = time.Now()
	}
	return nil
}

// GetSecretValue returns the version named by versionID and/or stage
// (AWSCURRENT when both are empty). When both are given, the version must carry
// the stage.
func (s *Store) GetSecretValue(id, versionID, stage string) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return Version{}, err
	}
	if versionID == "" && stage == "" {
		stage = StageCurrent
	}
	var v *Version
	if versionID != "" {
		v = sec.version(versionID)
		if v != nil && stage != "" && !slices.Contains(v.Stages, stage) {
			v = nil
		}
	} else {
		v = sec.holder(stage)
	}
	if v == nil {
		what := "staging label: " + stage
		if versionID != "" {
			what = "VersionId: " + versionID
		}
		return Version{}, errorf(ErrNotFound, "Secrets Manager can't find the specified secret value for %s", what)
	}
	return v.clone(), nil
}

// ListVersions returns all versions of the secret, deprecated ones included,
// oldest first.
func (s *Store) ListVersions(id string) ([]Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	vs := make([]Version, len(sec.versions))
	for i, v := range sec.versions {
		vs[i] = v.clone()
	}
	return vs, nil
}

// Describe returns the secret's metadata, as DescribeSecret does.
func (s *Store) Describe(id string) (Description, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return Description{}, err
	}
	d := Description{
		ARN: sec.arn, Name: sec.name, CreatedDate: sec.created, LastChangedDate: sec.changed,
		VersionIDsToStages: make(map[string][]string),
		Rotation:           sec.rotation, LastRotatedDate: sec.lastRotated,
	}
	for _, v := range sec.versions {
		if len(v.Stages) > 0 {
			d.VersionIDsToStages[v.VersionID] = slices.Clone(v.Stages)
		}
	}
	if sec.rotation.Enabled && sec.rotation.AutomaticallyAfterDays > 0 {
		from := sec.lastRotated
		if from.IsZero() {
			from = sec.created
		}
		d.NextRotationDate = from.AddDate(0, 0, sec.rotation.AutomaticallyAfterDays)
	}
	return d, nil
}

// SetRotation configures the secret's rotation: whether it is enabled, the
// rotation function's ARN and the interval in days (0 for none).
func (s *Store) SetRotation(id string, enabled bool, lambdaARN string, afterDays int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return err
	}
	sec.rotation = Rotation{Enabled: enabled, LambdaARN: lambdaARN, AutomaticallyAfterDays: afterDays}
	return nil
}

// SetLastRotated records when the secret's last rotation finished.
func (s *Store) SetLastRotated(id string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(id)
	if err != nil {
		return err
	}
	sec.lastRotated = t
	return nil
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomAlnum(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// newUUID returns a random (version 4) UUID, the form of the service's
// version IDs.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
