package fleetimport

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// scalar writes s as a YAML scalar of a block mapping: plain when YAML reads it back as the same
// text, quoted otherwise.
func scalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	v := strings.TrimSuffix(string(out), "\n")
	if strings.Contains(v, "\n") || strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">") {
		// A block scalar cannot follow "key: " on the same line as written here.
		return fmt.Sprintf("%q", s)
	}
	return v
}

// duration writes a duration the way a person would (5m, not 5m0s).
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

type writer struct{ bytes.Buffer }

func (w *writer) line(indent int, format string, args ...any) {
	w.WriteString(strings.Repeat(" ", indent))
	fmt.Fprintf(w, format, args...)
	w.WriteByte('\n')
}

// comment writes text as comment lines, wrapped at about 100 columns.
func (w *writer) comment(indent int, text string) {
	prefix := strings.Repeat(" ", indent) + "# "
	lineLen := len(prefix)
	w.WriteString(prefix)
	for i, word := range strings.Fields(text) {
		if i > 0 && lineLen+1+len(word) > 100 {
			w.WriteString("\n" + prefix)
			lineLen = len(prefix)
		} else if i > 0 {
			w.WriteByte(' ')
			lineLen++
		}
		w.WriteString(word)
		lineLen += len(word)
	}
	w.WriteByte('\n')
}

// render writes the plan as a commented imagehook configuration.
func render(p *Plan, sources []string) []byte {
	var w writer
	w.comment(0, fmt.Sprintf("imagehook configuration imported from Fleet imagescan (Fleet %s behaviour) by `imagehook import fleet-imagescan`.", FleetVersion))
	if len(sources) > 0 {
		w.comment(0, "Read from: "+strings.Join(sources, ", ")+".")
	}
	w.comment(0, "Switch Fleet's scans off before serving this (remove imageScans from the fleet.yaml files, or leave Fleet's imagescan feature off), so that two writers never race on the same markers.")
	w.WriteString("\n")
	renderRepo(&w, p.Repo)
	if len(p.Registries) > 0 {
		w.WriteString("\n")
		w.comment(0, "reconcile and verify ask only the registries configured here.")
		w.line(0, "registries:")
		for _, r := range p.Registries {
			w.line(2, "- host: %s", scalar(r.Host))
			w.comment(4, "Scanned by: "+strings.Join(r.Scans, ", ")+".")
			if r.Secret != "" {
				w.comment(4, fmt.Sprintf("Credentials of imageScans secretRef %q: Secret %s of type kubernetes.io/dockerconfigjson, its .dockerconfigjson auths[%q] username and password. Set %s and write the password to the file (kubectl -n %s get secret %s -o jsonpath='{.data.\\.dockerconfigjson}' | base64 -d shows both).",
					r.Secret, r.Secret, r.Host, envName(r.Secret, "USERNAME"), orDefault(p.Repo.Namespace, "<the GitRepo's namespace>"), r.Secret))
				w.line(4, "username: ${%s}", envName(r.Secret, "USERNAME"))
				w.line(4, "passwordFile: %s", scalar(secretFile(r.Secret, "password")))
			}
			if r.Insecure {
				w.comment(4, "Plain HTTP: Fleet's registry client speaks HTTP to this host (loopback, private or .local) too.")
				w.line(4, "insecure: true")
			}
		}
	}
	w.WriteString("\n")
	w.comment(0, "One hook per scan. Each only polls (reconcile:), so it needs no token and serves no webhook URL. For updates in seconds instead of a poll interval, give a hook `token: ${SOME_TOKEN}` and `source:` (the registry's webhook format) and point the registry's webhook at POST /hooks/<id>.")
	w.line(0, "hooks:")
	for _, h := range p.Hooks {
		renderHook(&w, p, h)
	}
	return w.Bytes()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func renderRepo(w *writer, r RepoPlan) {
	w.line(0, "repos:")
	w.line(2, "- name: %s", scalar(r.Name))
	w.line(4, "url: %s", scalar(r.URL))
	w.line(4, "branch: %s", scalar(r.Branch))
	if r.ClientSecret != "" {
		ns := orDefault(r.Namespace, "<the GitRepo's namespace>")
		if r.SSH {
			w.comment(4, fmt.Sprintf("Fleet pushed with Secret %s/%s (clientSecretName, kubernetes.io/ssh-auth): write its ssh-privatekey and known_hosts to these files.", ns, r.ClientSecret))
			w.line(4, "auth:")
			w.line(6, "sshKeyFile: %s", scalar(secretFile(r.ClientSecret, "ssh-privatekey")))
			w.line(6, "knownHostsFile: %s", scalar(secretFile(r.ClientSecret, "known_hosts")))
		} else {
			w.comment(4, fmt.Sprintf("Fleet pushed with Secret %s/%s (clientSecretName, kubernetes.io/basic-auth): set %s to its username and write its password to the file.", ns, r.ClientSecret, envName(r.ClientSecret, "USERNAME")))
			w.line(4, "auth:")
			w.line(6, "username: ${%s}", envName(r.ClientSecret, "USERNAME"))
			w.line(6, "passwordFile: %s", scalar(secretFile(r.ClientSecret, "password")))
		}
	}
	if r.AuthorName != "" || r.Email != "" {
		w.comment(4, "The GitRepo's imageScanCommit author.")
		w.line(4, "author:")
		if r.AuthorName != "" {
			w.line(6, "name: %s", scalar(r.AuthorName))
		}
		if r.Email != "" {
			w.line(6, "email: %s", scalar(r.Email))
		}
	}
	if r.CommitTemplate != "" {
		if r.MessageFromGitRepo {
			w.comment(4, "The GitRepo's imageScanCommit messageTemplate; imagehook appends its trailers (Imagehook-Event:, Imagehook-Image:, …).")
		} else {
			w.comment(4, "Fleet's default commit message; remove commitTemplate for imagehook's, which lists every change. imagehook appends its trailers.")
		}
		w.line(4, "commitTemplate: %s", scalar(r.CommitTemplate))
	}
	w.comment(4, fmt.Sprintf("Fleet committed at most every %s (imageScanInterval); imagehook commits as soon as a scan finds a newer tag.", duration(r.CommitInterval)))
}

func renderHook(w *writer, p *Plan, h HookPlan) {
	var b writer
	b.line(2, "- id: %s", scalar(h.ID))
	b.comment(4, fmt.Sprintf("%s imageScans[%d]: image %s, tagName %s.", h.Scan.At("image"), h.Scan.Index, h.Scan.Image, h.Scan.TagName))
	b.line(4, "tags: %s", scalar(h.Tags))
	b.comment(4, "Fleet reads the chosen tag's digest from the registry before writing; verify: registry does the same. pin: tag writes the tag alone where Fleet does (whole and :tag markers); :digest markers get repository:tag@digest, as Fleet writes them.")
	b.line(4, "verify: registry")
	b.line(4, "pin: tag")
	b.line(4, "reconcile:")
	b.line(6, "interval: %s", duration(h.Interval))
	b.line(6, "image: %s", scalar(h.Image))
	b.line(4, "targets:")
	for _, dir := range h.Paths {
		b.line(6, "- repo: %s", scalar(p.Repo.Name))
		b.line(8, "path: %s", scalar(dir))
		b.line(8, "marker: %s", scalar(h.Scan.TagName))
	}
	var at []string
	for _, m := range h.Markers {
		at = append(at, fmt.Sprintf("%s:%d", m.File, m.Line))
	}
	if len(at) > 0 {
		b.comment(4, "Markers: "+strings.Join(at, ", ")+".")
	}
	switch h.Disabled {
	case "":
		w.Write(b.Bytes())
		return
	case ReasonSuspended:
		w.comment(2, fmt.Sprintf("Suspended in %s (suspend: true): uncomment to poll.", h.Scan.At("suspend")))
	case ReasonNoMarker:
		w.comment(2, fmt.Sprintf("No marker names scan %q, so Fleet writes nothing for it: uncomment once one does.", h.Scan.TagName))
	}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		w.WriteString("  # " + strings.TrimPrefix(l, "  ") + "\n")
	}
}
