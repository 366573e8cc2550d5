package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// taggedFields lists, by YAML path ("repos[].auth.password"), every field of t tagged with tag,
// with the tag's value: the section types of the components are walked as config's own.
func taggedFields(t reflect.Type, path, tag string, out map[string]string) {
	switch t.Kind() {
	case reflect.Pointer:
		taggedFields(t.Elem(), path, tag, out)
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Uint8 {
			taggedFields(t.Elem(), path+"[]", tag, out)
		}
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || key == "-" {
				continue
			}
			at := strings.TrimPrefix(path+"."+key, ".")
			if inlined(f) {
				at = path // config.Repo's git part: its keys are the entry's own
			}
			if v := f.Tag.Get(tag); v != "" {
				out[at] = v
			}
			taggedFields(f.Type, at, tag, out)
		}
	}
}

// TestSecretTagsOfEverySection: the secret and secretfile tags the walks (Secrets, Redacted, the
// ...File reader) find are the same after the sections' types moved to their components as
// before: a field that lost its tag in the move would be neither masked nor read.
func TestSecretTagsOfEverySection(t *testing.T) {
	for _, tt := range []struct {
		tag  string
		want []string
	}{
		{"secret", []string{
			"admin.password", "admin.token", "approvalLinks.key", "approvers[].token", "hooks[].signature.secret",
			"hooks[].token", "hooks[].tokens", "journal.dsn", "mail.password", "notifiers[].secret", "notifiers[].url",
			"registries[].password", "repos[].auth.password", "repos[].auth.sshKeyPassphrase", "repos[].signingKeyPassphrase",
			"repos[].writeBack.token", "repos[].writeBack.webhookSecret",
		}},
		{"secretfile", []string{
			"approvalLinks.keyFile=Key", "approvers[].tokenFile=Token", "hooks[].tokenFile=Token",
			"hooks[].verify.cosign.key=KeyPEM", "journal.dsnFile=DSN", "mail.caFile=CAPEM", "mail.passwordFile=Password",
			"notifiers[].secretFile=Secret", "notifiers[].urlFile=URL",
			"registries[].caFile=CABundle", "registries[].passwordFile=Password", "repos[].auth.caFile=CABundle",
			"repos[].auth.passwordFile=Password", "repos[].auth.sshKeyFile=SSHKey", "repos[].signingKeyFile=SigningKey",
			"repos[].writeBack.tokenFile=Token", "verify.cosign.key=KeyPEM",
		}},
	} {
		t.Run(tt.tag, func(t *testing.T) {
			found := map[string]string{}
			taggedFields(reflect.TypeOf(Config{}), "", tt.tag, found)
			var got []string
			for k, v := range found {
				if tt.tag == "secretfile" {
					k += "=" + v
				}
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("fields tagged %s:\ngot  %q\nwant %q", tt.tag, got, tt.want)
			}
		})
	}
}

// movedSections is a configuration with a secret in every section whose type a component owns
// (mail, notifiers, registries, a repository's auth and writeBack), each given inline.
const movedSections = `
repos:
  - name: apps
    url: https://git.example.com/platform/apps.git
    auth: {username: bot, password: repo-pa55word, sshKeyPassphrase: ssh-pa55phrase}
    writeBack: {mode: pullRequest, provider: gitea, token: forge-t0ken-value, webhookSecret: forge-hook-s3cret}
mail: {host: smtp.example.com, from: bot@example.com, password: mail-pa55word}
notifiers:
  - {name: ops, type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=robot-t0ken-value", secret: SECrobot-s3cret}
registries:
  - {host: registry.example.com, username: u, password: registry-pa55word}
hooks:
  - id: web
    token: hook-t0ken-value
    targets: [{repo: apps, workload: deployment/web}]
`

// TestRedactedMasksMovedSections: check-config's output (the redacted config, marshalled) holds
// none of the secrets of the sections whose types moved to their components, and the redactor
// knows each.
func TestRedactedMasksMovedSections(t *testing.T) {
	c, err := Parse([]byte(movedSections), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	known := strings.Join(c.Secrets(), " ")
	for _, s := range []string{"repo-pa55word", "ssh-pa55phrase", "forge-t0ken-value", "forge-hook-s3cret", "mail-pa55word",
		"robot-t0ken-value", "SECrobot-s3cret", "registry-pa55word", "hook-t0ken-value"} {
		if strings.Contains(string(out), s) {
			t.Errorf("check-config output shows %s:\n%s", s, out)
		}
		if !strings.Contains(known, s) {
			t.Errorf("Secrets() lacks %s: %s", s, known)
		}
	}
	if c.Mail.Password != "mail-pa55word" || c.Repos[0].WriteBack.Token != "forge-t0ken-value" {
		t.Errorf("Redacted changed the original: %q %q", c.Mail.Password, c.Repos[0].WriteBack.Token)
	}
}

// TestFilesOfMovedSections: every ...File key of the sections whose types moved to their
// components is still read into its field at load.
func TestFilesOfMovedSections(t *testing.T) {
	dir := t.TempDir()
	ca := strings.TrimRight(testCertPEM(t), "\n")
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yml := `
repos:
  - name: apps
    url: https://git.example.com/platform/apps.git
    auth: {username: bot, passwordFile: ` + file("repo-pw", "repo-from-file") + `, sshKeyFile: ` + file("key", "ssh-key-bytes") + `, caFile: ` + file("repo-ca", ca) + `}
    writeBack: {mode: pullRequest, provider: gitea, tokenFile: ` + file("forge", "forge-from-file") + `}
mail: {host: smtp.example.com, from: bot@example.com, passwordFile: ` + file("mail-pw", "mail-from-file") + `, caFile: ` + file("mail-ca", ca) + `}
notifiers:
  - {name: ops, type: webhook, urlFile: ` + file("url", "https://hooks.example.com/x") + `, secretFile: ` + file("secret", "robot-from-file") + `}
registries:
  - {host: registry.example.com, username: u, passwordFile: ` + file("reg-pw", "registry-from-file") + `, caFile: ` + file("reg-ca", ca) + `}
`
	c, err := Parse([]byte(yml), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	r, n, g := c.Repos[0], c.Notifiers[0], c.Registries[0]
	for _, tt := range []struct{ key, got, want string }{
		{"repos[0].auth.passwordFile", r.Auth.Password, "repo-from-file"},
		{"repos[0].auth.sshKeyFile", string(r.Auth.SSHKey), "ssh-key-bytes\n"},
		{"repos[0].auth.caFile", string(r.Auth.CABundle), ca + "\n"},
		{"repos[0].writeBack.tokenFile", r.WriteBack.Token, "forge-from-file"},
		{"mail.passwordFile", c.Mail.Password, "mail-from-file"},
		{"mail.caFile", c.Mail.CAPEM, ca},
		{"notifiers[0].urlFile", n.URL, "https://hooks.example.com/x"},
		{"notifiers[0].secretFile", n.Secret, "robot-from-file"},
		{"registries[0].passwordFile", g.Password, "registry-from-file"},
		{"registries[0].caFile", string(g.CABundle), ca + "\n"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s read as %q, want %q", tt.key, tt.got, tt.want)
		}
	}
}

// sectionTypes lists the struct types of the schema declared outside package config, by the name
// the decoder gives them.
func sectionTypes(t reflect.Type, seen map[string]bool) {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		sectionTypes(t.Elem(), seen)
	case reflect.Struct:
		if seen[t.String()] {
			return
		}
		if t.PkgPath() != reflect.TypeOf(Config{}).PkgPath() {
			if _, custom := reflect.PointerTo(t).MethodByName("UnmarshalYAML"); !custom {
				seen[t.String()] = true
			}
		}
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() && f.Tag.Get("yaml") != "-" {
				sectionTypes(f.Type, seen)
			}
		}
	}
}

// TestDecodeErrorsSayConfigNames: a decoding error names a section by config's name of its type
// (config.Mail), as it did before the components owned the types, and every such type has one.
func TestDecodeErrorsSayConfigNames(t *testing.T) {
	seen := map[string]bool{}
	sectionTypes(reflect.TypeOf(Config{}), seen)
	for name := range seen {
		if _, ok := sectionNames[name]; !ok {
			t.Errorf("section type %s has no config name in sectionNames", name)
		}
	}
	if len(seen) != len(sectionNames) {
		t.Errorf("schema holds %d section types of other packages, sectionNames names %d", len(seen), len(sectionNames))
	}
	for _, tt := range []struct{ yml, want string }{
		{"mail: {host: h, bogus: 1}", "field bogus not found in type config.Mail"},
		{"mail: [1]", "cannot unmarshal !!seq into config.Mail"},
		{"notifiers: {a: 1}", "cannot unmarshal !!map into []config.Notifier"},
		{"notifiers: [{name: a, deadline: 1s}]", "field deadline not found in type config.Notifier"},
		{"notifiers: [{name: a, mention: 3}]", "into config.Mention"},
		{"registries: [{host: r, extra: 1}]", "field extra not found in type config.Registry"},
		{"repos: [{name: a, auth: {nope: 1}, author: {nope: 1}}]", "field nope not found in type config.Author"},
		{"repos: [{name: a, auth: {nope: 1}}]", "field nope not found in type config.RepoAuth"},
		{"repos: [{name: a, writeBack: {x: 1, codeup: 1}}]", "into config.CodeupRepo"},
		{"repos: [{name: a, writeBack: {x: 1}}]", "field x not found in type config.WriteBack"},
		{"repos: [{name: a, watch: {fleet: [], y: 1}}]", "field y not found in type config.Watch"},
		{"repos: [{name: a, watch: {fleet: []}}]", "into config.Namespace"},
		{"hooks: [{id: a, targets: [{values: {x: 1}}]}]", "field x not found in type config.Values"},
	} {
		_, err := Parse([]byte(tt.yml), env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.yml, err, tt.want)
		}
	}
}
