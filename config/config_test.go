package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const valid = `
listen: ":9100"
repos:
  - name: apps
    url: https://git.example.com/platform/apps.git
    auth: {username: imagehook, password: ${GIT_TOKEN}}
hooks:
  - id: website
    token: ${WEBSITE_TOKEN}
    source: aliyun
    targets:
      - repo: apps
        path: clusters/prod/website
        workload: deployment/website
        namespace: web
        container: website
`

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(valid), env(map[string]string{"GIT_TOKEN": "gt", "WEBSITE_TOKEN": "wt"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9100" || c.DataDir != "./data" || c.MaxBodyBytes != 1<<20 {
		t.Errorf("defaults: %+v", c)
	}
	if c.Repos[0].Branch != "main" || c.Repos[0].Auth.Password != "gt" || c.Hooks[0].Token != "wt" {
		t.Errorf("repo/hook: %+v %+v", c.Repos[0], c.Hooks[0])
	}
	red := c.Redacted()
	if red.Hooks[0].Token != "***" || red.Repos[0].Auth.Password != "***" || c.Hooks[0].Token != "wt" {
		t.Errorf("Redacted: %+v, original %+v", red.Hooks[0], c.Hooks[0])
	}
}

func TestSecretFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(valid, "token: ${WEBSITE_TOKEN}", "tokenFile: "+p, 1)
	c, err := Parse([]byte(y), env(map[string]string{"GIT_TOKEN": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hooks[0].Token != "from-file" {
		t.Errorf("token = %q", c.Hooks[0].Token)
	}
}

func TestParseErrors(t *testing.T) {
	vars := env(map[string]string{"GIT_TOKEN": "gt", "WEBSITE_TOKEN": "wt"})
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key names the line", strings.Replace(valid, "source: aliyun", "source: aliyun\n    sorce: x", 1), "line 11: field sorce not found"},
		{"unset env", valid, "WEBSITE_TOKEN is not set"},
		{"missing token", strings.Replace(valid, "token: ${WEBSITE_TOKEN}", "", 1), "hooks[website].token: required"},
		{"unknown repo", strings.Replace(valid, "- repo: apps", "- repo: nope", 1), `hooks[website].targets[0].repo: no repository named "nope"`},
		{"bad workload", strings.Replace(valid, "deployment/website", "website", 1), `hooks[website].targets[0].workload: workload "website": want kind/name`},
		{"unknown kind", strings.Replace(valid, "deployment/website", "service/website", 1), `"service" is not a workload kind`},
		{"path escape", strings.Replace(valid, "clusters/prod/website", "../etc", 1), "must be relative and stay inside"},
		{"unknown cluster", strings.Replace(valid, "container: website", "container: website\n        cluster: prod", 1), `no cluster named "prod"`},
		{"bad pin", strings.Replace(valid, "source: aliyun", "source: aliyun\n    pin: sha", 1), `pin: "sha" is not tag or digest`},
		{"duplicate hook", valid + `  - id: website
    token: x
    targets: [{repo: apps, workload: deployment/a}]
`, "hooks[website]: duplicate id"},
		{"bad mail tls", valid + "mail: {host: smtp.example.com, tls: ssl, from: a@example.com}\n", `mail.tls: "ssl"`},
		{"mail from not an address", valid + "mail: {host: smtp.example.com, from: not an address}\n", `mail.from: "not an address" is not a mail address`},
		{"mail from a username", valid + "mail: {host: smtp.example.com, username: ops}\n", `mail.from: "ops" is not a mail address`},
		{"not yaml", "hooks: [", "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := vars
			if tt.name == "unset env" {
				lookup = env(map[string]string{"GIT_TOKEN": "gt"})
			}
			_, err := Parse([]byte(tt.yaml), lookup)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMailDefaults(t *testing.T) {
	for _, tt := range []struct {
		in   string
		port int
		tls  string
	}{
		{"{host: h, from: a@b.c}", 465, "implicit"},
		{"{host: h, from: a@b.c, port: 587}", 587, "starttls"},
		{"{host: h, from: a@b.c, port: 25}", 25, "none"},
		{"{host: h, from: a@b.c, tls: starttls}", 587, "starttls"},
	} {
		c, err := Parse([]byte("mail: "+tt.in+"\n"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Mail.Port != tt.port || c.Mail.TLS != tt.tls || c.Mail.Language != "zh" {
			t.Errorf("%s: got %d %s %s", tt.in, c.Mail.Port, c.Mail.TLS, c.Mail.Language)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("hooks: [{id: a, token: b, targets: [{cluster: c, workload: deployment/e}]}]\nclusters: [{name: c}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, env(map[string]string{"GIT_TOKEN": "g", "WEBSITE_TOKEN": "w"}))
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
	})
}

func TestEnvAdjacent(t *testing.T) {
	c, err := Parse([]byte("hooks: [{id: a, token: ${A}${B}_x, targets: [{cluster: c, workload: deployment/e}]}]\nclusters: [{name: c}]\n"),
		env(map[string]string{"A": "1", "B": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hooks[0].Token != "12_x" {
		t.Errorf("token = %q", c.Hooks[0].Token)
	}
}

func TestMailFromOldEnv(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	c, err := Parse([]byte("listen: ':1'\n"), env(map[string]string{
		"MAIL_SMTP_SERVER": b64("smtp.qq.com"), "MAIL_FROM": b64("bot@qq.com"), "MAIL_PASSWORD": b64("pw"),
		"MAIL_SMTP_PORT": "465", "MAIL_TLS_CHECK": "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Mail
	if m == nil || m.Host != "smtp.qq.com" || m.From != "bot@qq.com" || m.Username != "bot@qq.com" || m.Password != "pw" ||
		m.Port != 465 || m.TLS != "implicit" || !m.InsecureSkipVerify {
		t.Errorf("mail = %+v", m)
	}
	c, err = Parse([]byte("listen: ':1'\n"), env(map[string]string{"MAIL_SMTP_SERVER": "smtp.163.com", "MAIL_FROM": "a@163.com", "MAIL_SMTP_PORT": "587"}))
	if err != nil || c.Mail.Host != "smtp.163.com" || c.Mail.TLS != "starttls" {
		t.Errorf("plain values: %+v %v", c.Mail, err)
	}
}

func TestHooksDir(t *testing.T) {
	c, err := Parse([]byte("hooksDir: testdata/hooks\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Clusters) != 1 || c.Clusters[0].Name != InClusterName || c.Clusters[0].Kubeconfig != "" {
		t.Errorf("clusters = %+v, want the in-cluster service account", c.Clusters)
	}
	h := c.Hooks[0]
	want := Target{Workload: "deployment/website", Namespace: "web", Container: "website", Cluster: InClusterName}
	if h.ID != "cnrancher_website" || h.Token != "website-hook-token" || len(h.Targets) != 1 || h.Targets[0] != want ||
		strings.Join(h.Mail.To, ",") != "ops@example.com" || h.MismatchStatus != 0 {
		t.Errorf("hook = %+v", h)
	}
	c, err = Parse([]byte("hooksDir: testdata/hooks\nlegacyMismatchStatus: true\nclusters: [{name: prod, kubeconfig: /k}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hooks[0].MismatchStatus != 500 || c.Hooks[0].Targets[0].Cluster != "prod" {
		t.Errorf("legacy: %+v", c.Hooks[0])
	}
}

func TestHooksDirRules(t *testing.T) {
	tests := []struct {
		name, rule, want string
	}{
		{"or refused", `{"or":[{"match":{"type":"value","value":"t","parameter":{"source":"url","name":"token"}}}]}`, `"or" is not supported`},
		{"not refused", `{"not":{"match":{"type":"value","value":"t","parameter":{"source":"url","name":"token"}}}}`, `"not" is not supported`},
		{"regex refused", `{"match":{"type":"regex","regex":"x","parameter":{"source":"url","name":"token"}}}`, `match type "regex"`},
		{"no token", `{"match":{"type":"value","value":"deployment/a","parameter":{"source":"url","name":"workload"}}}`, "no token rule"},
		{"blank token", `{"match":{"type":"value","value":" \u00a0","parameter":{"source":"url","name":"token"}}}`, "value is empty"},
		{"blank hmac secret", `{"match":{"type":"payload-hmac-sha1","secret":"","parameter":{"source":"header","name":"X-Sig"}}}`, "secret is empty"},
		{"two tokens", `{"and":[{"match":{"type":"value","value":"a","parameter":{"source":"url","name":"token"}}},{"match":{"type":"value","value":"b","parameter":{"source":"header","name":"Authorization"}}}]}`, "second credential rule"},
		{"two address rules", `{"and":[{"match":{"type":"value","value":"a","parameter":{"source":"url","name":"token"}}},{"match":{"type":"ip-whitelist","ip-range":"10.0.0.0/8"}},{"match":{"type":"ip-whitelist","ip-range":"10.1.0.0/16"}}]}`, "two ip-whitelist rules"},
		{"hmac honoured", `{"and":[{"match":{"type":"payload-hmac-sha256","secret":"k","parameter":{"source":"header","name":"X-Hub-Signature-256"}}},{"match":{"type":"value","value":"deployment/a","parameter":{"source":"url","name":"workload"}}},{"match":{"type":"ip-whitelist","ip-range":"10.0.0.0/8"}}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "h.json"), []byte(`[{"id":"x","trigger-rule":`+tt.rule+`}]`), 0o644); err != nil {
				t.Fatal(err)
			}
			hooks, err := LoadHooksDir(dir, "c", false)
			if tt.want == "" {
				if err != nil || hooks[0].Signature == nil || hooks[0].Signature.Algorithm != "sha256" || hooks[0].Signature.Secret != "k" || hooks[0].Token != "" || hooks[0].AllowedCIDRs[0] != "10.0.0.0/8" {
					t.Errorf("hooks %+v, err %v", hooks, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzHooksJSON(f *testing.F) {
	data, _ := os.ReadFile("testdata/hooks/website.json")
	f.Add(data)
	f.Add([]byte(`[{"id":"a","trigger-rule":{"and":[{"and":[]}]}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "h.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		hooks, err := LoadHooksDir(dir, "c", false)
		if err != nil && hooks != nil {
			t.Fatalf("error with hooks: %v", err)
		}
		for _, h := range hooks {
			if h.Token == "" && (h.Signature == nil || Blank(h.Signature.Secret)) || len(h.Targets) != 1 {
				t.Fatalf("hook without token or target: %+v", h)
			}
		}
	})
}

// TestOldEnvMailPorts: the old tool ran `curl smtps://HOST:PORT`, so its MAIL_* setups meant implicit
// TLS on any port; only 587 and 25 never carry it.
func TestOldEnvMailPorts(t *testing.T) {
	for _, tt := range []struct {
		port, want string
	}{
		{"", "implicit"}, {"465", "implicit"}, {"994", "implicit"}, {"2465", "implicit"}, {"587", "starttls"}, {"25", "none"},
	} {
		t.Run("port "+tt.port, func(t *testing.T) {
			vars := map[string]string{"MAIL_SMTP_SERVER": "smtp.163.com", "MAIL_FROM": "a@163.com"}
			if tt.port != "" {
				vars["MAIL_SMTP_PORT"] = tt.port
			}
			c, err := Parse([]byte("listen: ':1'\n"), env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if c.Mail.TLS != tt.want {
				t.Errorf("tls = %s, want %s", c.Mail.TLS, tt.want)
			}
		})
	}
}

// TestBlankSecretsRefused: a secret that is empty or white space after ${ENV} and file expansion is
// a config error naming the hook and the line — an unset rotation variable once let anyone in.
func TestBlankSecretsRefused(t *testing.T) {
	dir := t.TempDir()
	blankFile := filepath.Join(dir, "blank")
	if err := os.WriteFile(blankFile, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"NEW": "new-token", "OLD": "", "NBSP": "\u00a0\u2003"}
	base := "repos: [{name: apps, url: file:///x}]\nhooks:\n  - id: web\n    source: harbor\n    targets: [{repo: apps, workload: deployment/w}]\n"
	for _, tt := range []struct{ name, extra, want string }{
		{"rotation with an unset old token", "    tokens: [${NEW}, ${OLD}]\n", "hooks[web].tokens[1] (line 6): empty after expansion"},
		{"unicode space token", "    token: ${NBSP}\n", "hooks[web].token (line 6): empty after expansion"},
		{"blank token file", "    tokenFile: " + blankFile + "\n", "hooks[web].tokenFile (line 6): empty after expansion"},
		{"blank signature secret", "    token: ${NEW}\n    signature: {header: X-Sig, algorithm: sha256, secret: ${OLD}}\n", "hooks[web].signature.secret (line 7)"},
		{"no secret at all", "", "hooks[web].token: required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tt.extra), env(vars))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("blank admin token", func(t *testing.T) {
		_, err := Parse([]byte("admin: {token: ${OLD}}\n"), env(vars))
		if err == nil || !strings.Contains(err.Error(), "admin.token (line 1): empty") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestSecretsAndRedacted: every secret, including the user name and password of an https repo URL,
// is known to the redactor and masked by check-config.
func TestSecretsAndRedacted(t *testing.T) {
	yml := `repos:
  - {name: a, url: "https://ghp_T0KEN@git.example.com/a.git"}
  - {name: b, url: "https://bot:pa55@git.example.com/b.git", auth: {password: authpw}}
  - {name: c, url: "git@git.example.com:c.git"}
admin: {token: adm1n}
mail: {host: smtp.example.com, from: a@example.com, password: mailpw}
hooks:
  - id: h
    tokens: [tok1, tok2]
    signature: {header: X-Sig, algorithm: sha256, secret: sigsecret}
    targets: [{repo: a, workload: deployment/w}]
`
	c, err := Parse([]byte(yml), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Secrets(), " ")
	for _, s := range []string{"ghp_T0KEN", "pa55", "authpw", "adm1n", "mailpw", "tok1", "tok2", "sigsecret"} {
		if !strings.Contains(got, s) {
			t.Errorf("Secrets() lacks %s: %s", s, got)
		}
	}
	// A user name beside a password is not a secret (a token given as the user name is).
	if slices.Contains(c.Secrets(), "bot") {
		t.Errorf("Secrets() holds the user name bot: %s", got)
	}
	red := c.Redacted()
	if red.Repos[0].URL != "https://***@git.example.com/a.git" || red.Repos[1].URL != "https://***:***@git.example.com/b.git" ||
		red.Repos[2].URL != "git@git.example.com:c.git" {
		t.Errorf("redacted URLs: %s %s %s", red.Repos[0].URL, red.Repos[1].URL, red.Repos[2].URL)
	}
	if red.Hooks[0].Signature.Secret != "***" || c.Hooks[0].Signature.Secret != "sigsecret" {
		t.Errorf("signature secret: %q (original %q)", red.Hooks[0].Signature.Secret, c.Hooks[0].Signature.Secret)
	}
}

// TestHookChecksInConfig: sources, tag policies and signature rules are validated at load, with
// everything else.
func TestHookChecksInConfig(t *testing.T) {
	base := "repos: [{name: apps, url: file:///x}]\nhooks:\n  - id: web\n    token: t\n    targets: [{repo: apps, workload: deployment/w}]\n"
	for _, tt := range []struct{ extra, want string }{
		{"    source: nosuch\n", `hooks[web].source: unknown "nosuch"`},
		{"    source: aliyun\n    tags: \"semver:>>1\"\n", "hooks[web].tags:"},
		{"    source: aliyun\n    signature: {header: X-Sig, algorithm: md5}\n", `hooks[web].signature.algorithm: "md5"`},
		{"    source: aliyun\n    signature: {algorithm: sha256}\n", "hooks[web].signature.header: required"},
	} {
		if _, err := Parse([]byte(base+tt.extra), env(nil)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.extra, err, tt.want)
		}
	}
}

// TestRegistriesAndVerify: registry credentials are secrets like any other, and verify takes
// "registry" only.
func TestRegistriesAndVerify(t *testing.T) {
	base := "repos: [{name: apps, url: file:///x}]\nregistries: [{host: r.example.com, username: u, password: regpw}]\nhooks:\n  - id: web\n    token: t\n    targets: [{repo: apps, workload: deployment/w}]\n"
	c, err := Parse([]byte(base+"    verify: registry\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Secrets(), " "), "regpw") || c.Redacted().Registries[0].Password != "***" || c.Registries[0].Password != "regpw" {
		t.Errorf("registry password not treated as a secret")
	}
	if _, err := Parse([]byte(base+"    verify: cosign\n"), env(nil)); err == nil || !strings.Contains(err.Error(), `hooks[web].verify: "cosign" is not registry`) {
		t.Errorf("err = %v", err)
	}
	if c, err := Parse([]byte("verify: registry\n"+base), env(nil)); err != nil || !c.Hooks[0].Verify.Resolves() || c.Hooks[0].Verify.Signed() {
		t.Errorf("global default: %v %v", c, err)
	}
}

// TestCosignVerify: the signature gate's key is read at load and must be a PEM public key; a hook
// may opt out of the top-level default with none.
func TestCosignVerify(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"cosign.pub": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
		"cosign.key": "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nc2VjcmV0\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
		"cert.pem":   "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"notes.txt":  "not a key",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := "repos: [{name: apps, url: file:///x}]\nhooks:\n  - id: web\n    token: t\n    targets: [{repo: apps, workload: deployment/w}]\n"
	for _, tt := range []struct{ verify, want string }{
		{"{cosign: {key: " + filepath.Join(dir, "cosign.key") + "}}", "is a private key; give the public key"},
		{"{cosign: {key: " + filepath.Join(dir, "cert.pem") + "}}", `holds a "CERTIFICATE" block`},
		{"{cosign: {key: " + filepath.Join(dir, "notes.txt") + "}}", "is not a PEM public key"},
		{"{cosign: {key: " + filepath.Join(dir, "missing.pub") + "}}", "hooks[web].verify.cosign.key: open"},
		{"{cosign: {}}", "hooks[web].verify.cosign.key: required"},
		{"signed", `hooks[web].verify: "signed" is not registry, none or {cosign`},
	} {
		_, err := Parse([]byte(base+"    verify: "+tt.verify+"\n"), env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("verify: %s: err = %v, want %q", tt.verify, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("the private key leaks into the error: %v", err)
		}
	}
	c, err := Parse([]byte("verify: {cosign: {key: "+filepath.Join(dir, "cosign.pub")+"}}\n"+base+"  - id: open\n    token: u\n    verify: none\n    targets: [{repo: apps, workload: deployment/w}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Hooks[0].Verify; !v.Signed() || !v.Resolves() || string(v.Cosign.KeyPEM) != files["cosign.pub"] {
		t.Errorf("default not inherited: %+v", v)
	}
	if v := c.Hooks[1].Verify; v.Signed() || v.Resolves() {
		t.Errorf("verify: none did not opt out: %+v", v)
	}
	// What is verified is a digest, and that digest is what git gets.
	if c.Hooks[0].Pin != "digest" || c.Hooks[1].Pin != "" {
		t.Errorf("pins: %q (cosign), %q (verify: none); want digest and auto", c.Hooks[0].Pin, c.Hooks[1].Pin)
	}
	pub := filepath.Join(dir, "cosign.pub")
	_, err = Parse([]byte(base+"    verify: {cosign: {key: "+pub+"}}\n    pin: tag\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "hooks[web].pin (line 7): tag with verify.cosign") {
		t.Errorf("cosign with pin: tag: %v", err)
	}
	for verify, want := range map[string]string{"registry": "digest", "{registry: true}": "digest", "none": ""} {
		c, err := Parse([]byte(base+"    verify: "+verify+"\n"), env(nil))
		if err != nil || c.Hooks[0].Pin != want {
			t.Errorf("verify: %s: pin %q (%v), want %q", verify, c.Hooks[0].Pin, err, want)
		}
	}
	if c, err := Parse([]byte(base+"    verify: registry\n    pin: tag\n"), env(nil)); err != nil || c.Hooks[0].Pin != "tag" {
		t.Errorf("verify: registry may keep tags when the hook says so: %v", err)
	}
}

// TestNotifiers: a robot's URL and secret are secrets; a hook names only notifiers that exist; bad
// values are named without echoing the URL.
func TestNotifiers(t *testing.T) {
	base := "repos: [{name: apps, url: file:///x}]\nhooks:\n  - id: web\n    token: t\n    notify: [ops]\n    targets: [{repo: apps, workload: deployment/w}]\n"
	c, err := Parse([]byte("notifiers: [{name: ops, type: dingtalk, url: 'https://oapi.dingtalk.com/robot/send?access_token=r0bot', secret: SECx}]\n"+base), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Notifiers[0]; n.Language != "zh" || n.RatePerMinute != 20 || !strings.Contains(strings.Join(c.Secrets(), " "), "r0bot") || c.Redacted().Notifiers[0].URL != "***" {
		t.Errorf("notifier %+v", n)
	}
	for _, tt := range []struct{ notifiers, want string }{
		{"[{name: ops, type: teams, url: 'https://x/y'}]", `notifiers[ops].type: "teams"`},
		{"[{name: ops, type: slack, url: 'ftp://h/r0bot'}]", "notifiers[ops].url: required, an http(s) URL"},
		{"[{name: ops, type: webhook, url: 'https://h/x'}]", "notifiers[ops].secret: required for type webhook"},
		{"[{name: dev, type: slack, url: 'https://h/x'}]", `hooks[web].notify: no notifier named "ops"`},
	} {
		_, err := Parse([]byte("notifiers: "+tt.notifiers+"\n"+base), env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "r0bot") {
			t.Errorf("%s: err = %v, want %q", tt.notifiers, err, tt.want)
		}
	}
}
