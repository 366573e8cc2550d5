package updater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/journal"
	"github.com/imagehook/imagehook/oci"
)

// registrySeam answers Resolve from a script: an error per call until it runs out, then the digest.
// The real registry is asked in package service's tests; this covers what the flow does with each
// kind of answer.
type registrySeam struct {
	mu      sync.Mutex
	errs    []error
	calls   int
	digest  string
	signErr error
}

func (r *registrySeam) Resolve(context.Context, string, string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if len(r.errs) > 0 {
		err := r.errs[0]
		r.errs = r.errs[1:]
		return "", err
	}
	return r.digest, nil
}

func (r *registrySeam) Check(context.Context, string, string, string) error { return r.signErr }

// countingApplier records direct applies.
type countingApplier struct {
	mu    sync.Mutex
	calls int
}

func (a *countingApplier) Apply(context.Context, event.Target, *event.Event) (event.Step, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return event.Step{Status: event.Succeeded}, nil
}

// TestVerifyOutcomes: a registry that cannot be reached is asked again with the git step's backoff
// (accepted means applied); what the registry says (no tag, unsigned) fails the event, and a push
// it did not vouch for reaches neither git nor a cluster.
func TestVerifyOutcomes(t *testing.T) {
	unreachable := errors.New("dial tcp: connection refused")
	digest := "sha256:" + strings.Repeat("a", 64)
	for _, tt := range []struct {
		name       string
		errs       []error
		signErr    error
		want       event.Status
		wantErr    string
		wantCommit bool
	}{
		{name: "registry back after two failures", errs: []error{unreachable, unreachable}, want: event.Succeeded, wantCommit: true},
		{name: "registry never back", errs: []error{unreachable, unreachable, unreachable, unreachable}, want: event.Failed, wantErr: "gave up after 3 attempts"},
		{name: "no such tag", errs: []error{fmt.Errorf("%w web:9", oci.ErrNoTag)}, want: event.Failed, wantErr: "verify: registry has no tag"},
		{name: "unsigned", signErr: fmt.Errorf("%w: no signature", oci.ErrUnsigned), want: event.Failed, wantErr: "signature not verified"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j, err := journal.OpenSQLite(filepath.Join(t.TempDir(), "journal.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			repo := &memRepo{files: fstest.MapFS{"web.yaml": deployment("web", "web:1")}}
			reg := &registrySeam{errs: tt.errs, digest: digest, signErr: tt.signErr}
			applier := &countingApplier{}
			u := New(j, map[string]Repository{"apps": {Git: repo}}, applier, nil, slog.New(slog.DiscardHandler),
				Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3, Resolver: reg, Signatures: reg})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go u.Run(ctx)
			e := ev("e1", "web", "web:9", "")
			e.Verify, e.Signed = true, tt.signErr != nil
			e.Targets = append(e.Targets, event.Target{Cluster: "prod", Namespace: "web", Workload: "deployment/web", Container: "app"})
			if err := u.Submit(ctx, e); err != nil {
				t.Fatal(err)
			}
			got := waitDone(t, u, "e1")["e1"]
			if got.Status != tt.want || !strings.Contains(got.Error, tt.wantErr) {
				t.Fatalf("status %s error %q, want %s %q; steps %+v", got.Status, got.Error, tt.want, tt.wantErr, got.Steps)
			}
			if (len(repo.commits) == 1) != tt.wantCommit || (applier.calls == 1) != tt.wantCommit {
				t.Errorf("commits %d, direct applies %d, want one each: %v", len(repo.commits), applier.calls, tt.wantCommit)
			}
			if tt.wantCommit && !strings.Contains(repo.commits[0], "@"+digest) {
				t.Errorf("the registry's digest is not written:\n%s", repo.commits[0])
			}
		})
	}
}
