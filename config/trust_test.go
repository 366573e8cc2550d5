package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/redact"
	"github.com/imagehook/imagehook/updater"
)

// prRepo is a repository written through pull requests, for the branch template cases.
const prRepo = `repos:
  - name: apps
    url: https://bot:Sup3r-s3cret-pw@git.example.com/platform/apps.git
    branch: main
    writeBack:
      mode: pullRequest
      provider: gitea
      token: forge-t0ken-long
      branch: "{{ .Target.Workload }}"
hooks:
  - id: web
    token: hook-t0ken-long
    targets: [{repo: apps, workload: deployment/web}]
`

// TestConfigSaysNoAtLoad (issue row 9): what was accepted and failed only later — at serve, or
// when events ran — is refused at load, naming the key and its line.
func TestConfigSaysNoAtLoad(t *testing.T) {
	postgres := func(dsn string) string {
		return strings.Replace(prRepo, "hooks:", "journal: {driver: postgres, dsn: \""+dsn+"\"}\nhooks:", 1)
	}
	for _, tt := range []struct {
		name, yaml string
		lookup     map[string]string
		want       []string
		never      []string
	}{
		{name: "unknown field in the branch template", yaml: strings.Replace(prRepo, "{{ .Target.Workload }}", "{{ .Nope }}", 1),
			want: []string{"repos[apps].writeBack.branch (line 9):", "Nope"}},
		{name: "unknown target field in the branch template", yaml: strings.Replace(prRepo, "{{ .Target.Workload }}", "imagehook/{{ .Target.Image }}", 1),
			want: []string{"repos[apps].writeBack.branch (line 9):", "Image"}},
		{name: "branch template gives the base branch", yaml: strings.Replace(prRepo, "{{ .Target.Workload }}", "main", 1),
			want: []string{"repos[apps].writeBack.branch (line 9):", `gives "main", the base branch itself`}},
		{name: "unknown field in the commit template", yaml: strings.Replace(prRepo, "    branch: main\n", "    branch: main\n    commitTemplate: \"deploy {{ range .Events }}{{ .Pushr }}{{ end }}\"\n", 1),
			want: []string{"repos[apps].commitTemplate (line 5):", "Pushr"}},
		{name: "a DSN that does not parse", yaml: postgres("postgres://app:db-pa55word@db:port/imagehook"),
			want: []string{"journal.dsn (line 10): does not parse"}, never: []string{"db-pa55word", "app:"}},
		{name: "key=value DSN that does not parse", yaml: postgres("host=db password=db-pa55word port=x"),
			want: []string{"journal.dsn (line 10): does not parse"}, never: []string{"db-pa55word"}},
		{name: "negative watch timeout", yaml: strings.Replace(prRepo, "    branch: main\n", "    branch: main\n    watch: {cluster: prod, argocd: {namespace: argocd}, timeout: -5m}\n", 1) + "clusters: [{name: prod}]\n",
			want: []string{"repos[apps].watch.timeout (line 5): -5m0s is negative"}},
		{name: "absurd watch timeout", yaml: strings.Replace(prRepo, "    branch: main\n", "    branch: main\n    watch:\n      cluster: prod\n      argocd: {namespace: argocd}\n      timeout: 100000h\n", 1) + "clusters: [{name: prod}]\n",
			want: []string{"repos[apps].watch.timeout (line 8): 100000h0m0s is longer than 24h"}},
		{name: "absurd poll interval", yaml: strings.Replace(prRepo, "      mode: pullRequest\n", "      mode: pullRequest\n      pollInterval: 9000h\n", 1),
			want: []string{"repos[apps].writeBack.pollInterval (line 7): 9000h0m0s is longer than 24h"}},
		{name: "negative retention", yaml: "retention: -1h\n" + prRepo, want: []string{"retention (line 1): -1h0m0s is negative"}},
		{name: "negative rollout wait", yaml: strings.Replace(prRepo, "workload: deployment/web}", "workload: deployment/web, waitRollout: -1s}", 1),
			want: []string{"hooks[web].targets[0].waitRollout (line 13): -1s is negative"}},
		{name: "environment variable in a duration", yaml: strings.Replace(prRepo, "      mode: pullRequest\n", "      mode: pullRequest\n      pollInterval: ${POLL}\n", 1),
			lookup: map[string]string{"POLL": "30s"}, want: []string{"line 7: ${POLL} in a duration"}, never: []string{"__imagehook_env__"}},
		{name: "environment variable in a number", yaml: "maxBodyBytes: ${SIZE}\n" + prRepo,
			want: []string{"${SIZE}"}, never: []string{"__imagehook_env__"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(tt.lookup))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(err.Error(), n) {
					t.Errorf("err = %v\nmust not contain %q", err, n)
				}
			}
		})
	}
	if _, err := Parse([]byte(prRepo), env(nil)); err != nil {
		t.Errorf("the valid base is refused: %v", err)
	}
}

// TestErrorsNeverPrintUserinfo (issue row 8): a provider that is not one imagehook speaks, for a
// repository URL with credentials, names the URL without them.
func TestErrorsNeverPrintUserinfo(t *testing.T) {
	for _, url := range []string{
		"https://bot:Sup3r-s3cret-pw@bitbucket.org/team/apps.git",
		"https://Sup3r-s3cret-pw@bitbucket.org/team/apps.git",
		"https://bot:Sup3r-s3cret-pw@bitbucket.org:port/team/apps.git", // does not parse as a URL
	} {
		yml := strings.Replace(strings.Replace(prRepo, "provider: gitea", "provider: bitbucket", 1),
			"https://bot:Sup3r-s3cret-pw@git.example.com/platform/apps.git", url, 1)
		_, err := Parse([]byte(yml), env(nil))
		if err == nil || !strings.Contains(err.Error(), `provider: "bitbucket"`) || strings.Contains(err.Error(), "Sup3r-s3cret-pw") ||
			!strings.Contains(err.Error(), "@bitbucket.org") {
			t.Errorf("%s: err = %v", url, err)
		}
	}
}

// TestShortSecretWarning (issue row 10): a secret shorter than eight characters loads, with a
// warning that names its key and line and not its value; a user name beside a password is not a
// secret and gets none.
func TestShortSecretWarning(t *testing.T) {
	yml := strings.Replace(strings.Replace(prRepo, "hook-t0ken-long", "TF", 1), "forge-t0ken-long", "${FORGE}", 1)
	c, err := Parse([]byte(yml), env(map[string]string{"FORGE": "abc"}))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"hooks[web].token (line 12): a secret of 2 characters", "repos[apps].writeBack.token (line 8): a secret of 3 characters"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings:\n%s\nwant %q", got, want)
		}
	}
	if len(c.Warnings()) != 2 || strings.Contains(got, "TF") || strings.Contains(got, "abc") || strings.Contains(got, "url") {
		t.Errorf("warnings:\n%s", got)
	}
	if c, err := Parse([]byte(prRepo), env(nil)); err != nil || len(c.Warnings()) != 0 {
		t.Errorf("long secrets: %v %q", err, c.Warnings())
	}
}

// The samples templates run against at load have the shapes the updater gives them.
func TestTemplateDataShapes(t *testing.T) {
	for _, tt := range []struct{ sample, real any }{
		{commitData{}, updater.CommitData{}},
		{branchData{}, updater.BranchData{}},
	} {
		s, r := reflect.TypeOf(tt.sample), reflect.TypeOf(tt.real)
		if s.NumField() != r.NumField() {
			t.Errorf("%s has %d fields, %s %d", s, s.NumField(), r, r.NumField())
			continue
		}
		for i := 0; i < s.NumField(); i++ {
			if s.Field(i).Name != r.Field(i).Name || s.Field(i).Type != r.Field(i).Type {
				t.Errorf("%s.%s %s, but %s.%s %s", s, s.Field(i).Name, s.Field(i).Type, r, r.Field(i).Name, r.Field(i).Type)
			}
		}
	}
}

// TestRobotURLPartsAreSecrets (trust row 1): an endpoint or proxy that echoes only the request line
// or the path of a robot's URL leaks no token: each query value and each token-like path segment
// of a notifier's URL is a secret of its own.
func TestRobotURLPartsAreSecrets(t *testing.T) {
	robots := map[string]struct{ url, echo, token string }{
		"dingtalk": {"https://oapi.dingtalk.com/robot/send?access_token=4f1a0c9e8b7d6a5f", "500: POST /robot/send?access_token=4f1a0c9e8b7d6a5f HTTP/1.1", "4f1a0c9e8b7d6a5f"},
		"wecom":    {"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa", "bad key 693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa", "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"},
		"feishu":   {"https://open.feishu.cn/open-apis/bot/v2/hook/2b7c9f10-aa11-4c3d-9e8f-0123456789ab", "404 page /open-apis/bot/v2/hook/2b7c9f10-aa11-4c3d-9e8f-0123456789ab", "2b7c9f10-aa11-4c3d-9e8f-0123456789ab"},
		"slack":    {"https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/Xq9sEcReTpAtH123456789", "no_service /services/T0ABCDEF1/B0ABCDEF2/Xq9sEcReTpAtH123456789", "Xq9sEcReTpAtH123456789"},
	}
	for typ, r := range robots {
		t.Run(typ, func(t *testing.T) {
			yml := fmt.Sprintf("repos: [{name: apps, url: file:///x}]\nnotifiers: [{name: ops, type: %s, url: %q}]\nhooks:\n  - id: web\n    token: a-long-hook-token\n    notify: [ops]\n    targets: [{repo: apps, workload: deployment/w}]\n", typ, r.url)
			c, err := Parse([]byte(yml), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := redact.New(c.Secrets()).String(r.echo); strings.Contains(got, r.token) {
				t.Errorf("echoed %q leaks the token", got)
			}
		})
	}
}
