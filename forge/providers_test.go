package forge

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestInferEveryHostRule: every host rule answers its provider, and hosts that only look like one
// (another domain, a port, a subdomain of an exact host) answer none.
func TestInferEveryHostRule(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"https://github.com/p/apps.git", "github"},
		{"ssh://git@github.com:22/p/apps.git", "github"},
		{"https://github.com:443/p/apps.git", ""},
		{"https://api.github.com/p/apps.git", ""},
		{"https://github.example.com/p/apps.git", ""},
		{"https://gitlab.com/g/apps.git", "gitlab"},
		{"git@gitlab.corp.example:g/apps.git", "gitlab"},
		{"https://mygitlab.com/g/apps.git", ""},
		{"https://gitea.com/p/apps.git", "gitea"},
		{"https://codeberg.org/p/apps.git", "gitea"},
		{"https://gitea.corp.example:3000/p/apps.git", "gitea"},
		{"git@forgejo.corp.example:p/apps.git", "gitea"},
		{"https://www.codeberg.org/p/apps.git", ""},
		{"https://gitee.com/p/apps.git", "gitee"},
		{"https://gitee.com.cn/p/apps.git", ""},
		{"https://www.gitee.com/p/apps.git", ""},
		{"https://codeup.aliyun.com/org/p/apps.git", "codeup"},
		{"https://codeup.aliyun.com:8443/org/p/apps.git", ""},
		{"https://aliyun.com/org/p/apps.git", ""},
		{"not a url", ""},
	} {
		if got := Infer(tt.url); got != tt.want {
			t.Errorf("Infer(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

// TestProvidersOrder: Providers is what config's error lists, in this order, and New's error for
// an unknown provider lists the same.
func TestProvidersOrder(t *testing.T) {
	want := []string{"gitea", "github", "gitlab", "gitee", "codeup"}
	if !slices.Equal(Providers, want) {
		t.Errorf("Providers = %q, want %q", Providers, want)
	}
	_, err := New(WriteBack{Provider: "bitbucket"}, "https://bitbucket.org/p/apps.git", nil)
	if got, want := fmt.Sprint(err), `forge provider "bitbucket": want one of gitea, github, gitlab, gitee, codeup`; got != want {
		t.Errorf("New(bitbucket) err = %q, want %q", got, want)
	}
	_, err = New(WriteBack{Provider: "bitbucket"}, "no-url", nil)
	if got, want := fmt.Sprint(err), `repository URL "no-url": want https://host/owner/name(.git) or git@host:owner/name`; got != want {
		t.Errorf("New(bitbucket, no-url) err = %q, want %q", got, want)
	}
}

// clientOf is the client a forge New built sends with.
func clientOf(t *testing.T, f Forge) *client {
	t.Helper()
	switch f := f.(type) {
	case *gitea:
		return f.c
	case *github:
		return f.c
	case *gitlab:
		return f.c
	case *gitee:
		return f.c
	case *codeup:
		return f.c
	}
	t.Fatalf("forge %T", f)
	return nil
}

// TestNewBuildsEachProvider: each provider (and the alias forgejo) is built with its API's default
// base on the repository's host, or the configured API, and sends its token its own way.
func TestNewBuildsEachProvider(t *testing.T) {
	for _, tt := range []struct {
		name      string
		w         WriteBack
		repoURL   string
		typ       string
		base      string
		auth      string
		header    string
		param     string
		repo      string
		errorText string
	}{
		{name: "gitea", w: WriteBack{Provider: "gitea", Token: "t"}, repoURL: "http://gitea.corp.example:3000/p/apps.git",
			typ: "*forge.gitea", base: "http://gitea.corp.example:3000/api/v1/repos/p/apps", auth: "token t"},
		{name: "forgejo alias", w: WriteBack{Provider: "forgejo", Token: "t"}, repoURL: "git@forgejo.corp.example:p/apps.git",
			typ: "*forge.gitea", base: "https://forgejo.corp.example/api/v1/repos/p/apps", auth: "token t"},
		{name: "gitea api", w: WriteBack{Provider: "gitea", API: "https://api.example/v1/", Token: "t"}, repoURL: "https://gitea.com/p/apps.git",
			typ: "*forge.gitea", base: "https://api.example/v1/repos/p/apps", auth: "token t"},
		{name: "github", w: WriteBack{Provider: "github", Token: "t"}, repoURL: "git@github.com:p/apps.git",
			typ: "*forge.github", base: "https://api.github.com/repos/p/apps", auth: "Bearer t", repo: "p p/apps"},
		{name: "github enterprise", w: WriteBack{Provider: "github", API: "https://ghe.example/api/v3", Token: "t"}, repoURL: "https://ghe.example/p/apps.git",
			typ: "*forge.github", base: "https://ghe.example/api/v3/repos/p/apps", auth: "Bearer t", repo: "p p/apps"},
		{name: "gitlab", w: WriteBack{Provider: "gitlab", Token: "t"}, repoURL: "http://gitlab.corp.example/g/sub/apps.git",
			typ: "*forge.gitlab", base: "http://gitlab.corp.example/api/v4/projects/g%2Fsub%2Fapps", header: "PRIVATE-TOKEN"},
		{name: "gitee", w: WriteBack{Provider: "gitee", Token: "t"}, repoURL: "git@gitee.com:p/apps.git",
			typ: "*forge.gitee", base: "https://gitee.com/api/v5/repos/p/apps", param: "access_token", repo: "p/apps"},
		{name: "gitee enterprise", w: WriteBack{Provider: "gitee", Token: "t"}, repoURL: "http://git.corp.example/p/apps.git",
			typ: "*forge.gitee", base: "http://git.corp.example/api/v5/repos/p/apps", param: "access_token", repo: "p/apps"},
		{name: "codeup", w: WriteBack{Provider: "codeup", Token: "t"}, repoURL: "https://codeup.aliyun.com/org1/p/apps.git",
			typ: "*forge.codeup", base: "https://openapi-rdc.aliyuncs.com/oapi/v1/codeup/organizations/org1", header: "x-yunxiao-token", repo: "org1%2Fp%2Fapps"},
		{name: "codeup ids", w: WriteBack{Provider: "codeup", Token: "t", Codeup: CodeupRepo{OrganizationID: "o 2", RepositoryID: "g/apps"}}, repoURL: "https://codeup.aliyun.com/org1/p/apps.git",
			typ: "*forge.codeup", base: "https://openapi-rdc.aliyuncs.com/oapi/v1/codeup/organizations/o%202", header: "x-yunxiao-token", repo: "g%2Fapps"},
		{name: "codeup unknown", w: WriteBack{Provider: "codeup", Token: "t"}, repoURL: "https://codeup.aliyun.com//apps",
			errorText: "codeup: organization and repository unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.w, tt.repoURL, nil)
			if tt.errorText != "" || err != nil {
				if fmt.Sprint(err) != tt.errorText {
					t.Fatalf("err = %v, want %q", err, tt.errorText)
				}
				return
			}
			if got := fmt.Sprintf("%T", f); got != tt.typ {
				t.Fatalf("New = %s, want %s", got, tt.typ)
			}
			c := clientOf(t, f)
			if c.base != tt.base || c.auth != tt.auth || c.header != tt.header || c.param != tt.param || c.token != "t" || c.http == nil {
				t.Errorf("client base %q auth %q header %q param %q token %q; want %q %q %q %q t", c.base, c.auth, c.header, c.param, c.token, tt.base, tt.auth, tt.header, tt.param)
			}
			repo := ""
			switch f := f.(type) {
			case *github:
				repo = f.owner + " " + f.repo
			case *gitee:
				repo = f.repo
				if f.merged == nil {
					t.Error("gitee built without its merged map")
				}
			case *codeup:
				repo = f.repo
			}
			if repo != tt.repo {
				t.Errorf("repo %q, want %q", repo, tt.repo)
			}
		})
	}
	hc := &http.Client{Timeout: time.Second}
	if f, err := New(WriteBack{Provider: "github", Token: "t"}, "https://github.com/p/apps", hc); err != nil || clientOf(t, f).http != hc {
		t.Errorf("New with a client: %v, its own client not used", err)
	}
}

// TestAliasesAreForNewOnly pins today's rule: an alias (forgejo) is built by New but is no provider
// of its own — Providers (what config accepts) lacks it and VerifyDelivery authenticates nothing
// for it.
func TestAliasesAreForNewOnly(t *testing.T) {
	if slices.Contains(Providers, "forgejo") {
		t.Error("Providers lists the alias forgejo")
	}
	if VerifyDelivery("forgejo", http.Header{"X-Gitlab-Token": {"secret-long"}, "X-Gitee-Token": {"secret-long"}, "X-Codeup-Token": {"secret-long"}}, nil, "secret-long", time.Now()) {
		t.Error("VerifyDelivery authenticated a delivery for the alias forgejo")
	}
}

// TestProviderTableIsComplete: every entry has a name, a client and a webhook verifier; no name or
// alias is used twice; and no host is recognised by two entries, so that Infer's answer does not
// depend on the table's order.
func TestProviderTableIsComplete(t *testing.T) {
	seen := map[string]string{}
	for i, p := range providers {
		if p.name == "" {
			t.Errorf("entry %d has no name", i)
		}
		if p.build == nil {
			t.Errorf("%s has no constructor", p.name)
		}
		if p.verify == nil {
			t.Errorf("%s has no webhook verifier", p.name)
		}
		for _, name := range append([]string{p.name}, p.aliases...) {
			if other, dup := seen[name]; dup {
				t.Errorf("%s: name %q is also %s's", p.name, name, other)
			}
			seen[name] = p.name
		}
		probes := slices.Clone(p.hosts)
		for _, prefix := range p.hostPrefixes {
			probes = append(probes, prefix+"example.com")
		}
		for _, host := range probes {
			if !p.recognises(host) {
				t.Errorf("%s does not recognise its own host %q", p.name, host)
			}
			for _, q := range providers {
				if q.name != p.name && q.recognises(host) {
					t.Errorf("host %q is recognised by %s and %s", host, p.name, q.name)
				}
			}
		}
	}
}

// TestMergesAtOnce: Gitee and Codeup schedule no merge for when the checks pass; the others do,
// and a name that is no provider (an alias included) says nothing.
func TestMergesAtOnce(t *testing.T) {
	for name, want := range map[string]bool{"gitea": false, "github": false, "gitlab": false, "gitee": true, "codeup": true, "forgejo": false, "bitbucket": false, "": false} {
		if got := MergesAtOnce(name); got != want {
			t.Errorf("MergesAtOnce(%q) = %v, want %v", name, got, want)
		}
	}
}
