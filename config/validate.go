package config

import (
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"path"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/notify/chat"
	"github.com/imagehook/imagehook/redact"
	"github.com/imagehook/imagehook/registry"
	"github.com/imagehook/imagehook/tagpolicy"
	"github.com/imagehook/imagehook/workload"
)

// problems collects validation errors.
type problems []error

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

// Validate checks what can be checked without the network: every error, not the first.
func (c *Config) Validate() error {
	var errs problems
	if c.MaxBodyBytes < 0 {
		errs.add("maxBodyBytes: must be positive")
	}
	if l := c.Limits; l.MaxEventsPerRequest < 0 || l.MaxFileBytes < 0 || l.MaxEventBytes < 0 || l.MaxEventNodes < 0 {
		errs.add("limits: maxEventsPerRequest, maxFileBytes, maxEventBytes and maxEventNodes must be positive")
	}
	validateBudgets(c, &errs)
	validateAdmin(c, &errs)
	repos := c.validateRepos(&errs)
	clusters := map[string]bool{}
	for i, cl := range c.Clusters {
		if cl.Name == "" {
			errs.add("clusters[%d].name: required", i)
		}
		clusters[cl.Name] = true
	}
	switch c.Journal.Driver {
	case "", "sqlite":
	case "postgres":
		if Blank(c.Journal.DSN) {
			errs.add("journal.dsn: required for driver postgres (or dsnFile)")
		}
		validateDSN(c, &errs)
	default:
		errs.add("journal.driver: %q is not sqlite or postgres", c.Journal.Driver)
	}
	validateDurations(c, &errs)
	validateMail(c.Mail, &errs)
	notifiers := c.validateNotifiers(&errs)
	c.Verify.validate(&errs, "verify")
	for i, r := range c.Registries {
		if r.Host == "" || strings.ContainsAny(r.Host, "/ ") {
			errs.add("registries[%d].host: %q is not a registry host", i, r.Host)
		}
	}
	ids := map[string]bool{}
	for i, h := range c.Hooks {
		where := fmt.Sprintf("hooks[%s]", h.ID)
		switch {
		case h.ID == "":
			errs.add("hooks[%d].id: required", i)
		case ids[h.ID]:
			errs.add("%s: duplicate id", where)
		case strings.ContainsAny(h.ID, "/?#% "):
			errs.add("%s.id: must not contain / ? # %% or spaces", where)
		}
		ids[h.ID] = true
		errs = append(errs, checkHookSecrets(c, i, h)...)
		h.validate(&errs, where)
		if h.Verify.Signed() && h.Pin == "tag" {
			// The signature vouches for a digest; a tag in git can be re-pushed with an unsigned
			// image, and clusters would pull that.
			errs.add("%s.pin%s: tag with verify.cosign: the signature is checked for a digest, so imagehook writes that digest (tag@digest); remove pin or set pin: digest", where, lineOf(c.node("hooks", i, "pin")))
		}
		h.validateTargets(&errs, where, repos, clusters)
		for _, n := range h.Notify {
			if !notifiers[n] {
				errs.add("%s.notify: no notifier named %q", where, n)
			}
		}
	}
	validatePipelines(c, &errs, repos, clusters, notifiers)
	// However a message came to quote a URL (a provider not inferred from it, a value YAML could
	// not decode), its user information is never printed.
	for i, err := range errs {
		if msg := redact.URLs(err.Error()); msg != err.Error() {
			errs[i] = errors.New(msg)
		}
	}
	return errors.Join(errs...)
}

func validateAdmin(c *Config, errs *problems) {
	for _, f := range []struct{ key, val string }{{"token", c.Admin.Token}, {"password", c.Admin.Password}} {
		if n := c.node("admin", f.key); n != nil && Blank(f.val) {
			errs.add("admin.%s%s: empty after expansion; set a secret or remove the key", f.key, lineOf(n))
		}
	}
	if c.Admin.Password != "" && Blank(c.Admin.Username) {
		errs.add("admin.username: required with admin.password")
	}
}

// validateRepos checks the repositories and returns their names.
func (c *Config) validateRepos(errs *problems) map[string]bool {
	repos := map[string]bool{}
	for i, r := range c.Repos {
		switch {
		case r.Name == "":
			errs.add("repos[%d].name: required", i)
		case repos[r.Name]:
			errs.add("repos[%s]: duplicate name", r.Name)
		}
		repos[r.Name] = true
		if r.URL == "" {
			errs.add("repos[%s].url: required", r.Name)
		}
		validateWriteBack(r.WriteBack, errs, fmt.Sprintf("repos[%s].writeBack", r.Name), r)
		validateTemplates(c, errs, i, r)
		if w := r.Watch; w != nil {
			if !slices.ContainsFunc(c.Clusters, func(cl Cluster) bool { return cl.Name == w.Cluster }) {
				errs.add("repos[%s].watch.cluster: no cluster named %q", r.Name, w.Cluster)
			}
			if w.ArgoCD.Namespace == "" && w.Fleet.Namespace == "" {
				errs.add("repos[%s].watch: argocd.namespace or fleet.namespace required", r.Name)
			}
		}
	}
	return repos
}

func validateWriteBack(w WriteBack, errs *problems, where string, r Repo) {
	switch w.Mode {
	case "", "push":
		return
	case "pullRequest":
	default:
		errs.add("%s.mode: %q is not push or pullRequest", where, w.Mode)
		return
	}
	if !slices.Contains(forge.Providers, w.Provider) {
		errs.add("%s.provider: %q: want one of %s (not inferred from %s)", where, w.Provider, strings.Join(forge.Providers, ", "), redact.URL(r.URL))
	}
	if Blank(w.Token) {
		errs.add("%s: token or tokenFile required (an API token that may open pull requests)", where)
	}
	if w.Merge != "" && w.Merge != "none" && w.Merge != "auto" {
		errs.add("%s.merge: %q is not none or auto", where, w.Merge)
	}
	if w.Language != "" && w.Language != "en" && w.Language != "zh" {
		errs.add("%s.language: %q is not en or zh", where, w.Language)
	}
	if r.PushBranch != "" {
		errs.add("%s: pushBranch and pull requests both choose the branch; drop pushBranch", where)
	}
	validateForge(w, errs, where)
}

func validateMail(m *Mail, errs *problems) {
	if m == nil {
		return
	}
	if m.Host == "" {
		errs.add("mail.host: required")
	}
	if m.TLS != "implicit" && m.TLS != "starttls" && m.TLS != "none" {
		errs.add("mail.tls: %q is not implicit, starttls or none", m.TLS)
	}
	if m.Language != "zh" && m.Language != "en" {
		errs.add("mail.language: %q is not zh or en", m.Language)
	}
	if m.From == "" {
		errs.add("mail.from: required")
	} else if _, err := netmail.ParseAddress(m.From); err != nil {
		// Said at load (and by check-config), not first by mail.New when serve starts.
		errs.add("mail.from: %q is not a mail address: %v", m.From, err)
	}
	for name, text := range map[string]string{"subjectTemplate": m.SubjectTemplate, "bodyTemplate": m.BodyTemplate} {
		if _, err := template.New(name).Parse(text); err != nil {
			errs.add("mail.%s: %v", name, err)
		}
	}
}

// validate checks a hook's own settings: format, policy, signature rule, addresses, mail routing.
func (h Hook) validate(errs *problems, where string) {
	if h.MismatchStatus != 0 && (h.MismatchStatus < 400 || h.MismatchStatus > 599) {
		errs.add("%s.mismatchStatus: %d is not a 4xx or 5xx status", where, h.MismatchStatus)
	}
	for _, cidr := range h.AllowedCIDRs {
		if _, _, err := net.ParseCIDR(cidr); err != nil && net.ParseIP(cidr) == nil {
			errs.add("%s.allowedCIDRs: %q is not an address or CIDR", where, cidr)
		}
	}
	if h.Source != "" && h.Source != "auto" && !registry.Known(h.Source) {
		errs.add("%s.source: unknown %q (known: auto, %s)", where, h.Source, strings.Join(registry.Sources(), ", "))
	}
	if _, err := tagpolicy.Parse(h.Tags); err != nil {
		errs.add("%s.tags: %v", where, err)
	}
	if sig := h.Signature; sig != nil {
		if sig.Header == "" {
			errs.add("%s.signature.header: required", where)
		}
		if a := strings.ToLower(sig.Algorithm); a != "sha1" && a != "sha256" && a != "sha512" {
			errs.add("%s.signature.algorithm: %q: want sha1, sha256 or sha512", where, sig.Algorithm)
		}
	}
	if r := h.Reconcile; r != nil && r.Interval == 0 {
		errs.add("%s.reconcile.interval: required (how often to ask the registry, at least 1s)", where)
	}
	if r := h.Reconcile; r != nil && r.Image != "" {
		if ref, err := imageref.Parse(r.Image); err != nil || ref.Tag != "" || ref.Digest != "" {
			errs.add("%s.reconcile.image: %q is not a repository (host/path, without tag or digest)", where, r.Image)
		}
	}
	h.Verify.validate(errs, where+".verify")
	if h.Pin != "" && h.Pin != "tag" && h.Pin != "digest" {
		errs.add("%s.pin: %q is not tag or digest", where, h.Pin)
	}
	for _, on := range h.Mail.On {
		if on != "success" && on != "failure" {
			errs.add("%s.mail.on: %q is not success or failure", where, on)
		}
	}
	if h.Mail.Language != "" && h.Mail.Language != "zh" && h.Mail.Language != "en" {
		errs.add("%s.mail.language: %q is not zh or en", where, h.Mail.Language)
	}
}

// validateTargets checks a hook's targets against the repositories and clusters configured.
func (h Hook) validateTargets(errs *problems, where string, repos, clusters map[string]bool) {
	if len(h.Targets) == 0 {
		errs.add("%s.targets: at least one target is required", where)
	}
	repo := ""
	for j, t := range h.Targets {
		tw := fmt.Sprintf("%s.targets[%d]", where, j)
		if t.Repo == "" && t.Cluster == "" {
			errs.add("%s: needs a repo, a cluster, or both", tw)
		}
		if t.Repo != "" && !repos[t.Repo] {
			errs.add("%s.repo: no repository named %q", tw, t.Repo)
		}
		if t.Repo != "" && repo != "" && t.Repo != repo {
			errs.add("%s.repo: a hook's targets must share one repository (%q and %q); use two hooks", tw, repo, t.Repo)
		}
		if t.Repo != "" {
			repo = t.Repo
		}
		if t.Cluster != "" && !clusters[t.Cluster] {
			errs.add("%s.cluster: no cluster named %q", tw, t.Cluster)
		}
		t.validate(errs, tw)
	}
}

// validate checks one target's shape.
func (t Target) validate(errs *problems, tw string) {
	if t.Workload != "" {
		ref, err := workload.Parse(t.Workload)
		switch {
		case err != nil:
			errs.add("%s.workload: %v", tw, err)
		case t.Cluster != "" && !ref.Kind.Apply:
			errs.add("%s.workload: direct apply supports %s, not %s", tw, workload.Names(true), ref.Kind.Name)
		}
	} else if t.Cluster != "" {
		errs.add("%s.workload: required for direct apply", tw)
	}
	if (t.Values != nil || t.Marker != "") && t.Repo == "" {
		errs.add("%s: values and marker targets need a repo", tw)
	}
	if t.Values != nil && t.Marker != "" {
		errs.add("%s: set values or marker, not both", tw)
	}
	if v := t.Values; v != nil && (v.File == "" || v.Image == "" && (v.Repository == "" || v.Tag == "")) {
		errs.add("%s.values: needs file, and image or repository and tag", tw)
	}
	if t.Path != "" {
		p := path.Clean(t.Path)
		if path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
			errs.add("%s.path: %q must be relative and stay inside the repository", tw, t.Path)
		}
	}
}

// checkHookSecrets refuses a hook without a usable secret: every token, tokens entry and signature
// secret that is given must be non-blank after ${ENV} and file expansion (an unset rotation
// variable must not open the hook to anyone), and at least one must be given.
func checkHookSecrets(c *Config, i int, h Hook) []error {
	where := fmt.Sprintf("hooks[%s]", h.ID)
	var errs []error
	blank := func(field string, n *yaml.Node) {
		errs = append(errs, fmt.Errorf("%s.%s%s: empty after expansion; a blank secret would let anyone in", where, field, lineOf(n)))
	}
	own := i < len(c.ownHooks)
	if own {
		if n := c.node("hooks", i, "token"); n != nil && Blank(h.Token) {
			blank("token", n)
		}
		if n := c.node("hooks", i, "tokenFile"); n != nil && Blank(h.Token) {
			blank("tokenFile", n)
		}
	}
	for j, t := range h.Tokens {
		if Blank(t) {
			blank(fmt.Sprintf("tokens[%d]", j), c.node("hooks", i, "tokens", j))
		}
	}
	if s := h.Signature; s != nil && own && c.node("hooks", i, "signature", "secret") != nil && Blank(s.Secret) {
		blank("signature.secret", c.node("hooks", i, "signature", "secret"))
	}
	hasToken := !Blank(h.Token)
	for _, t := range h.Tokens {
		hasToken = hasToken || !Blank(t)
	}
	// A hook that only polls (reconcile:) needs no secret: it serves no webhook URL.
	if !hasToken && (h.Signature == nil || Blank(h.Signature.Secret)) && len(errs) == 0 && h.Reconcile == nil {
		errs = append(errs, fmt.Errorf("%s.token: required (a shared secret the registry sends), or reconcile: for a hook that only polls", where))
	}
	return errs
}

// NotifierTypes are the kinds of notifiers: the chat package's vendor table.
var NotifierTypes = chat.Types()

func (c *Config) validateNotifiers(errs *problems) map[string]bool {
	names := map[string]bool{}
	for i, n := range c.Notifiers {
		where := fmt.Sprintf("notifiers[%s]", n.Name)
		switch {
		case n.Name == "":
			where = fmt.Sprintf("notifiers[%d]", i)
			errs.add("%s.name: required", where)
		case names[n.Name]:
			errs.add("%s: duplicate name", where)
		}
		names[n.Name] = true
		if !slices.Contains(NotifierTypes, n.Type) {
			errs.add("%s.type: %q: want one of %s", where, n.Type, strings.Join(NotifierTypes, ", "))
		}
		if u, err := url.Parse(n.URL); Blank(n.URL) || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			// Never echo the URL: it holds the robot's token.
			errs.add("%s.url: required, an http(s) URL (or urlFile)", where)
		}
		if n.Type == "webhook" && Blank(n.Secret) {
			errs.add("%s.secret: required for type webhook (receivers verify X-Imagehook-Signature-256)", where)
		}
		if n.Language != "zh" && n.Language != "en" {
			errs.add("%s.language: %q is not zh or en", where, n.Language)
		}
		for _, on := range n.On {
			if on != "success" && on != "failure" {
				errs.add("%s.on: %q is not success or failure", where, on)
			}
		}
		if n.RatePerMinute < 0 {
			errs.add("%s.ratePerMinute: negative", where)
		}
	}
	return names
}
