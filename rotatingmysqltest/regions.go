package rotatingmysqltest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Regions is Secrets Manager in several regions: the primary (Region,
// us-east-1) and replica regions, each served by an emulator of its own
// (its own listener, Store, faults and SetDown), with the primary's
// secrets replicated to every replica after a delay (SetReplicationDelay),
// as ReplicateSecretToRegions does: the same names, versions and staging
// labels, each replica's ARN differing in its region only. Write to the
// primary's Store; a replica's Store is replaced by each replication.
//
// AWSConfig and HTTPClient leave the endpoint to the SDK and deliver each
// request to the emulator of the region its host names
// (secretsmanager.REGION.amazonaws.com): a region that is down refuses the
// connection, as a region's outage would.
type Regions struct {
	names  []string // the primary first
	sms    map[string]*SecretsManager
	client *RedirectClient

	mu    sync.Mutex
	delay time.Duration
	queue []snapshot

	stop chan struct{}
	done chan struct{}
}

type snapshot struct {
	at      time.Time
	secrets []*secret
}

// replicationTick is how often the primary's Store is copied.
const replicationTick = 10 * time.Millisecond

// NewRegions starts the primary region's emulator (Region) and one per
// replica region, replicating with no delay until SetReplicationDelay.
func NewRegions(replicas ...string) (*Regions, error) {
	r := &Regions{names: append([]string{Region}, replicas...), sms: make(map[string]*SecretsManager),
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, name := range r.names {
		if _, dup := r.sms[name]; dup {
			r.closeAll()
			return nil, fmt.Errorf("region %s given twice", name)
		}
		sm, err := NewSecretsManager()
		if err != nil {
			r.closeAll()
			return nil, err
		}
		r.sms[name] = sm
	}
	r.client = NewRedirectClient(func(req *http.Request) string {
		if sm := r.sms[hostRegion(req.URL.Host)]; sm != nil {
			return sm.net.addr
		}
		return "127.0.0.1:9" // no such region: refused
	})
	go r.replicate()
	return r, nil
}

// hostRegion returns REGION of secretsmanager[-fips].REGION.amazonaws.com.
func hostRegion(host string) string {
	labels := strings.Split(host, ".")
	if len(labels) < 3 {
		return ""
	}
	return labels[1]
}

// Region returns the emulator of the region name, or nil.
func (r *Regions) Region(name string) *SecretsManager { return r.sms[name] }

// Primary returns the primary region's emulator.
func (r *Regions) Primary() *SecretsManager { return r.sms[Region] }

// SetReplicationDelay makes a change in the primary reach the replicas d
// after it was made.
func (r *Regions) SetReplicationDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// HTTPClient returns the client that delivers each request to the
// emulator of the region its host names.
func (r *Regions) HTTPClient() *RedirectClient { return r.client }

// AWSConfig returns a configuration in the primary region, with the
// emulators' credentials and HTTPClient, and no endpoint: the SDK resolves
// secretsmanager.REGION.amazonaws.com for each region.
func (r *Regions) AWSConfig() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		HTTPClient:  r.client,
	}
}

// Close stops the replication and every region's emulator.
func (r *Regions) Close() error {
	close(r.stop)
	<-r.done
	r.client.CloseIdleConnections()
	r.closeAll()
	return nil
}

func (r *Regions) closeAll() {
	for _, sm := range r.sms {
		sm.Close()
	}
}

// replicate copies the primary's Store to the replicas, each copy delay
// after it was taken.
func (r *Regions) replicate() {
	defer close(r.done)
	t := time.NewTicker(replicationTick)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		r.mu.Lock()
		r.queue = append(r.queue, snapshot{at: now, secrets: r.Primary().store.snapshot()})
		var due *snapshot
		for len(r.queue) > 0 && !r.queue[0].at.Add(r.delay).After(now) {
			due = &r.queue[0]
			r.queue = r.queue[1:]
		}
		r.mu.Unlock()
		if due == nil {
			continue
		}
		for _, name := range r.names[1:] {
			r.sms[name].store.replaceWith(due.secrets, name)
		}
	}
}

// snapshot returns a deep copy of the store's secrets.
func (s *Store) snapshot() []*secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*secret, 0, len(s.secrets))
	for _, sec := range s.secrets {
		out = append(out, sec.copy())
	}
	return out
}

// replaceWith replaces the store's secrets with copies of secrets, their
// ARNs moved to region.
func (s *Store) replaceWith(secrets []*secret, region string) {
	m := make(map[string]*secret, len(secrets))
	for _, sec := range secrets {
		c := sec.copy()
		if a, err := arn.Parse(c.arn); err == nil {
			a.Region = region
			c.arn = a.String()
		}
		m[c.name] = c
	}
	s.mu.Lock()
	s.secrets = m
	s.mu.Unlock()
}

func (sec *secret) copy() *secret {
	c := *sec
	c.versions = make([]*Version, len(sec.versions))
	for i, v := range sec.versions {
		vc := v.clone()
		c.versions[i] = &vc
	}
	return &c
}
