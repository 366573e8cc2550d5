package config

import (
	"strings"
	"testing"
)

// TestGiteeCodeupAndRefresh: gitee and codeup are providers, inferred from gitee.com and
// codeup.aliyun.com; writeBack.codeup is read for codeup only (refused elsewhere, naming the key);
// watch.refresh defaults to true and may be turned off.
func TestGiteeCodeupAndRefresh(t *testing.T) {
	repo := func(url, extra string) string {
		return `repos:
  - name: apps
    url: ` + url + `
    branch: main
    writeBack:
      mode: pullRequest
      token: forge-t0ken-long
` + extra + `hooks:
  - id: web
    token: hook-t0ken-long
    targets: [{repo: apps, workload: deployment/web}]
`
	}
	for _, tt := range []struct {
		name, yaml, provider, err string
	}{
		{name: "gitee inferred", yaml: repo("https://gitee.com/platform/apps.git", ""), provider: "gitee"},
		{name: "codeup inferred", yaml: repo("https://codeup.aliyun.com/60de7a6852743a5162b5f957/platform/apps.git", ""), provider: "codeup"},
		{name: "codeup ids", yaml: repo("git@codeup.aliyun.com:60de7a6852743a5162b5f957/platform/apps.git", "      codeup: {organizationId: 60de7a6852743a5162b5f957, repositoryId: \"2813489\"}\n"), provider: "codeup"},
		{name: "self-hosted Gitee Enterprise", yaml: repo("https://git.corp.example.com/platform/apps.git", "      provider: gitee\n      api: https://git.corp.example.com/api/v5\n"), provider: "gitee"},
		{name: "codeup key on another provider", yaml: repo("https://gitee.com/platform/apps.git", "      codeup: {organizationId: x}\n"), err: `repos[apps].writeBack.codeup: only read by provider codeup (this repository's is "gitee")`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), env(nil))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Repos[0].WriteBack.Provider; got != tt.provider {
				t.Errorf("provider %q, want %q", got, tt.provider)
			}
		})
	}
	c, err := Parse([]byte(repo("https://codeup.aliyun.com/60de7a6852743a5162b5f957/platform/apps.git", "      codeup: {organizationId: org1, repositoryId: \"2813489\"}\n")), env(nil))
	if err != nil || c.Repos[0].WriteBack.Codeup != (CodeupRepo{OrganizationID: "org1", RepositoryID: "2813489"}) {
		t.Errorf("codeup: %+v %v", c.Repos[0].WriteBack.Codeup, err)
	}
	// What the provider does not offer is said at load.
	c, err = Parse([]byte(repo("https://codeup.aliyun.com/60de7a6852743a5162b5f957/platform/apps.git", "      merge: auto\n      labels: [imagehook]\n")), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	warnings := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"repos[apps].writeBack.merge (line 8): codeup schedules no merge", "repos[apps].writeBack.labels (line 9): Codeup change requests have no labels"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}

	watch := func(refresh string) string {
		return `clusters: [{name: prod}]
repos:
  - name: apps
    url: https://git.example.com/platform/apps.git
    watch: {cluster: prod, argocd: {namespace: argocd}` + refresh + `}
hooks:
  - id: web
    token: hook-t0ken-long
    targets: [{repo: apps, workload: deployment/web}]
`
	}
	for _, tt := range []struct {
		refresh string
		want    bool
	}{{"", true}, {", refresh: true", true}, {", refresh: false", false}} {
		c, err := Parse([]byte(watch(tt.refresh)), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Repos[0].Watch.Refreshes(); got != tt.want {
			t.Errorf("watch%s: refreshes %v, want %v", tt.refresh, got, tt.want)
		}
	}
	if (*Watch)(nil).Refreshes() {
		t.Error("no watch refreshes")
	}
}
