package config

import (
	"strings"
	"testing"
)

// TestPollOnlyHooks: a hook with reconcile: may omit its token (it only polls); without
// reconcile: the token stays required; reconcile.image must be a repository.
func TestPollOnlyHooks(t *testing.T) {
	base := "repos: [{name: apps, url: file:///x}]\nhooks:\n  - id: web\n    targets: [{repo: apps, path: apps, marker: web}]\n"
	for _, tt := range []struct {
		name, extra, want string
		pollOnly          bool
	}{
		{"reconcile without token", "    reconcile: {interval: 5m, image: registry.example.com/team/web}\n", "", true},
		{"reconcile with token", "    token: t0ken-value-long\n    reconcile: {interval: 5m}\n", "", false},
		{"neither", "", "hooks[web].token: required (a shared secret the registry sends), or reconcile: for a hook that only polls", false},
		{"image with a tag", "    reconcile: {interval: 5m, image: registry.example.com/team/web:1.0}\n", `hooks[web].reconcile.image: "registry.example.com/team/web:1.0" is not a repository`, false},
		{"blank token is still refused", "    token: \"  \"\n    reconcile: {interval: 5m}\n", "hooks[web].token (line 5): empty after expansion", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(base+tt.extra), env(nil))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Hooks[0].PollOnly(); got != tt.pollOnly {
				t.Errorf("PollOnly() = %v, want %v", got, tt.pollOnly)
			}
		})
	}
}
