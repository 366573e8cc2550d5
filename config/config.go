// Package config loads imagehook's YAML configuration: strict decoding (unknown keys are errors that
// name the line), ${ENV} expansion, secrets read from ...File paths, defaults, and validation at load
// time with messages that name the hook and field at fault.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/redact"
)

// Config is the whole configuration file.
type Config struct {
	Listen string `yaml:"listen"`
	// DataDir holds the journal and the repository caches.
	DataDir string `yaml:"dataDir"`
	// Retention is how long finished events stay in the journal (default 720h).
	Retention Duration `yaml:"retention"`
	// Admin protects the status page at / (open when unset).
	Admin Admin `yaml:"admin"`
	// MaxBodyBytes caps a webhook body; larger requests get 413.
	MaxBodyBytes int64     `yaml:"maxBodyBytes"`
	Repos        []Repo    `yaml:"repos"`
	Clusters     []Cluster `yaml:"clusters"`
	Mail         *Mail     `yaml:"mail"`
	// Journal chooses where events are recorded: SQLite in dataDir (the default), or PostgreSQL,
	// shared by several replicas.
	Journal JournalConfig `yaml:"journal"`
	// Notifiers are chat robots and webhooks that hear about finished events (hooks[].notify).
	Notifiers []Notifier `yaml:"notifiers"`
	Hooks     []Hook     `yaml:"hooks"`
	// Approvers may approve promotions (pipelines[].stages[].gates.approval).
	Approvers []Approver `yaml:"approvers"`
	// ApprovalLinks, when set, puts signed approve and reject links in approval requests.
	ApprovalLinks *ApprovalLinks `yaml:"approvalLinks"`
	// Pipelines move an image through stages (dev → staging → prod) behind gates.
	Pipelines []Pipeline `yaml:"pipelines"`
	// Registries are the registry hosts verify and reconcile may ask (with the hooks'
	// registryHost), and the credentials they are asked with; no other host is asked anything.
	Registries []Registry `yaml:"registries"`
	// Verify is the default of hooks[].verify.
	Verify *Verify `yaml:"verify"`
	// RegistryAliases groups registry hosts that serve the same repositories; when set, only hosts
	// of one group match each other (otherwise the same repository path on any host does).
	RegistryAliases [][]string `yaml:"registryAliases"`
	// HooksDir loads the old tool's hooks.json files (adnanh/webhook format) from a directory.
	HooksDir string `yaml:"hooksDir"`
	// LegacyMismatchStatus answers failed trigger rules of hooks.json hooks with the status
	// their file names (the old tool used 500) instead of 401/403.
	LegacyMismatchStatus bool   `yaml:"legacyMismatchStatus"`
	Limits               Limits `yaml:"limits"`
	// Metrics controls who may read /metrics.
	Metrics Metrics `yaml:"metrics"`
	// Quickstart is set by Quickstart, never by a file: it prints mail to the log.
	Quickstart bool `yaml:"-"`
	// ownHooks are the hooks of the YAML file, kept apart from those of HooksDir for reloads.
	ownHooks []Hook
	// root is the decoded file, so that validation can name the line of a bad value.
	root *yaml.Node
	// warnings are collected at load (Warnings).
	warnings []string
}

// Metrics controls access to /metrics.
type Metrics struct {
	// Public serves /metrics without the admin credentials (for a Prometheus that cannot send them).
	Public bool `yaml:"public"`
}

// Admin holds the status page's credentials: a bearer token, or a basic-auth user and password.
type Admin struct {
	Token    string `yaml:"token" secret:"true"`
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
}

// Limits bound what callers may cost.
type Limits struct {
	// HookRate and HookBurst limit each hook's requests per second (429 beyond).
	HookRate  float64 `yaml:"hookRate"`
	HookBurst int     `yaml:"hookBurst"`
	// GlobalRate and GlobalBurst limit all webhook requests together.
	GlobalRate  float64 `yaml:"globalRate"`
	GlobalBurst int     `yaml:"globalBurst"`
	// AuthFailureRate and AuthFailureBurst bound the failed authentications of one client address
	// (429 beyond); they never touch the budgets of authenticated deliveries.
	AuthFailureRate  float64 `yaml:"authFailureRate"`
	AuthFailureBurst int     `yaml:"authFailureBurst"`
	// MaxEventsPerRequest caps the events one webhook request may carry (413 beyond).
	MaxEventsPerRequest int `yaml:"maxEventsPerRequest"`
	// MaxFileBytes skips manifest files larger than this (named on the event); default 64 MiB, so
	// that vendored install bundles are read. A hostile file is bounded per document instead.
	MaxFileBytes int64 `yaml:"maxFileBytes"`
	// MaxEventBytes and MaxEventNodes bound what one event may decode of the manifests (default
	// 128 MiB) and keep of the documents that can hold its target (default 100,000 nodes): files
	// past the budget are not read and named on the event.
	MaxEventBytes int64 `yaml:"maxEventBytes"`
	MaxEventNodes int   `yaml:"maxEventNodes"`

	// Budgets counted in events and deliveries (budgets.go has their defaults and checks).

	// MaxPendingPerHook and MaxPending cap the events waiting in the journal, per hook and in all
	// (default 10,000 and 50,000): a request that would pass either is answered 429 with
	// Retry-After before anything is written.
	MaxPendingPerHook int `yaml:"maxPendingPerHook"`
	MaxPending        int `yaml:"maxPending"`
	// ForgeRate and ForgeBurst limit the deliveries /forges/{repo} takes per repository and second
	// (default 10, burst 50; 429 beyond).
	ForgeRate  float64 `yaml:"forgeRate"`
	ForgeBurst int     `yaml:"forgeBurst"`
}

// Repo is a manifests repository.
type Repo struct {
	Name   string `yaml:"name"`
	URL    string `yaml:"url"`
	Branch string `yaml:"branch"`
	// PushBranch receives the commits instead of Branch, for teams that merge via pull requests.
	PushBranch string   `yaml:"pushBranch"`
	Auth       RepoAuth `yaml:"auth"`
	Author     Author   `yaml:"author"`
	// Timeout bounds each fetch and push.
	Timeout Duration `yaml:"timeout"`
	// CommitURL links a commit in reports: "https://git.example.com/platform/apps/commit/{sha}".
	CommitURL string `yaml:"commitURL"`
	// SigningKeyFile is the private key that signs every commit: an armored OpenPGP key, or an
	// OpenSSH key (signed as git does with gpg.format=ssh, which forges show as verified).
	SigningKeyFile       string `yaml:"signingKeyFile"`
	SigningKeyPassphrase string `yaml:"signingKeyPassphrase" secret:"true"`
	// SigningKey is the content of SigningKeyFile, read at load.
	SigningKey []byte `yaml:"-"`
	// CommitTemplate is a Go text/template for the commit message (data: .Events, .Changes);
	// imagehook's trailers are always appended.
	CommitTemplate string `yaml:"commitTemplate"`
	// WriteBack chooses between pushing to Branch (the default) and opening pull requests.
	WriteBack WriteBack `yaml:"writeBack"`
	// Watch follows each pushed commit until its GitOps tool deployed it and the workloads are ready.
	Watch *Watch `yaml:"watch"`
}

// JournalConfig is the journal's backend.
type JournalConfig struct {
	// Driver is sqlite (default) or postgres.
	Driver string `yaml:"driver"`
	// DSN is PostgreSQL's connection string (postgres://user:password@host/db?sslmode=…).
	DSN     string `yaml:"dsn" secret:"true"`
	DSNFile string `yaml:"dsnFile"`
}

// Watch is where a repository's GitOps tool runs.
type Watch struct {
	// Cluster names a clusters[] entry (read access to the applications and workloads is enough).
	Cluster string    `yaml:"cluster"`
	ArgoCD  Namespace `yaml:"argocd"`
	Fleet   Namespace `yaml:"fleet"`
	// Timeout bounds the wait for sync and rollout (default 15m).
	Timeout Duration `yaml:"timeout"`
	// Refresh asks the GitOps tool to look now after each push it follows (default true): Argo CD's
	// refresh annotation, Fleet's webhook commit.
	Refresh *bool `yaml:"refresh"`
}

// Namespace is a namespace to read in.
type Namespace struct {
	Namespace string `yaml:"namespace"`
}

// WriteBack is how changes reach a repository's branch.
type WriteBack struct {
	// Mode is push (commit to the branch) or pullRequest (commit to imagehook's own branch and
	// open, or update, a pull request to the branch).
	Mode string `yaml:"mode"`
	// Provider is gitea (also Forgejo), github, gitlab, gitee or codeup; inferred from
	// well-known hosts.
	Provider string `yaml:"provider"`
	// API is the API base URL of a self-hosted forge (default: the provider's, on the repo's host).
	API       string `yaml:"api"`
	Token     string `yaml:"token" secret:"true"`
	TokenFile string `yaml:"tokenFile"`
	// Branch names imagehook's branch per target, a template over .Target (Workload, Namespace,
	// Container, Path, Repo) and .Hook; default "imagehook/{{ .Target.Workload }}".
	Branch string `yaml:"branch"`
	// Merge is none (people merge) or auto (the forge merges when its checks pass).
	Merge     string   `yaml:"merge"`
	Labels    []string `yaml:"labels"`
	Reviewers []string `yaml:"reviewers"`
	// Language of the pull request's title and body: en or zh.
	Language string `yaml:"language"`
	// WebhookSecret checks the forge's webhooks at POST /forges/{repo} (GitHub/Gitea HMAC, GitLab
	// token, Gitee's password or signing key, Codeup's secret token); a delivery makes imagehook
	// look at its pull requests at once.
	WebhookSecret string `yaml:"webhookSecret" secret:"true"`
	// PollInterval is how often open pull requests are read when no webhook comes (default 1m).
	PollInterval Duration `yaml:"pollInterval"`
	// Codeup names the repository for Codeup's API (provider codeup only).
	Codeup CodeupRepo `yaml:"codeup"`
}

// PullRequests reports whether the repository is written through pull requests.
func (w WriteBack) PullRequests() bool { return w.Mode == "pullRequest" }

// RepoAuth holds a repository's credentials; every secret may be inline, ${ENV} or a ...File path.
type RepoAuth struct {
	Username              string `yaml:"username"`
	Password              string `yaml:"password" secret:"true"`
	PasswordFile          string `yaml:"passwordFile"`
	SSHKeyFile            string `yaml:"sshKeyFile"`
	SSHKeyPassphrase      string `yaml:"sshKeyPassphrase" secret:"true"`
	KnownHostsFile        string `yaml:"knownHostsFile"`
	InsecureIgnoreHostKey bool   `yaml:"insecureIgnoreHostKey"`
	CAFile                string `yaml:"caFile"`
	// SSHKey and CABundle are the contents of SSHKeyFile and CAFile, read at load.
	SSHKey   []byte `yaml:"-"`
	CABundle []byte `yaml:"-"`
}

// Author is the commit author.
type Author struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// Reconcile is a hook's polling of its registry.
type Reconcile struct {
	Interval Duration `yaml:"interval"`
	// Image is the repository whose tags are asked for marker targets (host/path, no tag): a
	// marker that holds only a tag does not name it. Workload targets ask for the image they run.
	Image string `yaml:"image"`
}

// PollOnly reports whether the hook only polls its registry: reconcile without a token, tokens
// or signature secret. Such a hook serves no webhook URL.
func (h Hook) PollOnly() bool {
	if h.Reconcile == nil || !Blank(h.Token) || h.Signature != nil && !Blank(h.Signature.Secret) {
		return false
	}
	for _, t := range h.Tokens {
		if !Blank(t) {
			return false
		}
	}
	return true
}

// Registry is how imagehook reaches one registry host.
type Registry struct {
	Host         string `yaml:"host"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password" secret:"true"`
	PasswordFile string `yaml:"passwordFile"`
	CAFile       string `yaml:"caFile"`
	// Insecure speaks plain HTTP (a lab registry); logged as a warning.
	Insecure bool `yaml:"insecure"`
	// CABundle is the content of CAFile, read at load.
	CABundle []byte `yaml:"-"`

	// MaxTags and MaxTagBytes cap one repository's tag list, all pages together (reconcile): past
	// either, the pass fails with reason "tag list too long" (default 100,000 tags, 8 MiB; the
	// defaults are oci.DefaultMaxTags and oci.DefaultMaxTagBytes).
	MaxTags     int   `yaml:"maxTags"`
	MaxTagBytes int64 `yaml:"maxTagBytes"`
}

// Cluster is a Kubernetes cluster that no GitOps tool watches, patched directly.
type Cluster struct {
	Name string `yaml:"name"`
	// Kubeconfig is a file path; empty means the in-cluster service account.
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
}

// Mail configures SMTP delivery of results.
type Mail struct {
	Host               string   `yaml:"host"`
	Port               int      `yaml:"port"`
	TLS                string   `yaml:"tls"` // implicit | starttls | none
	Username           string   `yaml:"username"`
	Password           string   `yaml:"password" secret:"true"`
	PasswordFile       string   `yaml:"passwordFile"`
	From               string   `yaml:"from"`
	To                 []string `yaml:"to"`
	Language           string   `yaml:"language"` // zh | en
	CAFile             string   `yaml:"caFile"`
	InsecureSkipVerify bool     `yaml:"insecureSkipVerify"`
	Timeout            Duration `yaml:"timeout"`
	// Deadline bounds one report's whole delivery, retries included (default 60s), so that a
	// server that never answers costs a bounded time.
	Deadline Duration `yaml:"deadline"`
	// SubjectTemplate and BodyTemplate override the built-in Go text/templates.
	SubjectTemplate string `yaml:"subjectTemplate"`
	BodyTemplate    string `yaml:"bodyTemplate"`
	// CAPEM is a CA given inline by the old tool's MAIL_CACERT variable.
	CAPEM string `yaml:"-"`
}

// Hook is one webhook endpoint, POST /hooks/{id}.
type Hook struct {
	ID string `yaml:"id"`
	// Token is the shared secret; Tokens allows several during a rotation.
	Token     string   `yaml:"token" secret:"true"`
	TokenFile string   `yaml:"tokenFile"`
	Tokens    []string `yaml:"tokens" secret:"true"`
	// Source is the payload format: aliyun, dockerhub, harbor, custom, ….
	Source string `yaml:"source"`
	// RegistryHost replaces the host a payload implies (an ACR Enterprise Edition instance, say).
	RegistryHost string `yaml:"registryHost"`
	// Tags is an optional tag policy.
	Tags string `yaml:"tags"`
	// Pin is "", "tag" or "digest": see manifests.Pin. A hook that verifies pushes defaults to
	// "digest", and one that checks cosign signatures must not say "tag".
	Pin string `yaml:"pin"`
	// NoDowngrade refuses a semver tag lower than the one the target runs.
	NoDowngrade bool `yaml:"noDowngrade"`
	// Reconcile asks the registry, every interval, for tags newer than the targets run, and submits
	// an event for the newest the tag policy allows: a webhook that never came is caught.
	Reconcile *Reconcile `yaml:"reconcile"`
	// Verify asks the registry before writing (nil: the top-level default).
	Verify *Verify `yaml:"verify"`
	// AllowOlder applies a push whose registry time is older than the push already applied to the
	// same target (a deliberate rollback from CI); by default such a push is ignored as a replay.
	AllowOlder bool `yaml:"allowOlder"`
	// Signature checks an HMAC of the body in a header (the old hooks.json payload-hmac rules).
	Signature *Signature `yaml:"signature"`
	// AllowedCIDRs, when set, limits the callers' addresses (the old ip-whitelist rule).
	AllowedCIDRs []string `yaml:"allowedCIDRs"`
	// MismatchStatus answers a failed trigger rule (default 401 for credentials, 403 for targets);
	// the old tool answered 500.
	MismatchStatus int      `yaml:"mismatchStatus"`
	Targets        []Target `yaml:"targets"`
	Mail           HookMail `yaml:"mail"`
	// Notify names the notifiers (top-level notifiers[]) that hear about this hook's events.
	Notify []string `yaml:"notify"`
	// Pipeline, instead of targets, makes the hook's pushes enter that pipeline's first stages.
	Pipeline string `yaml:"pipeline"`
	// pipelineTargets is set once Targets were filled from the pipeline.
	pipelineTargets bool
}

// Target is one workload container a hook updates.
type Target struct {
	Repo      string `yaml:"repo"`
	Path      string `yaml:"path"`
	Workload  string `yaml:"workload"` // kind/name
	Namespace string `yaml:"namespace"`
	Container string `yaml:"container"`
	Cluster   string `yaml:"cluster"`
	// WaitRollout makes direct apply wait this long for the rollout, and report it.
	WaitRollout Duration `yaml:"waitRollout"`
	// Values targets a Helm values file instead of a workload document.
	Values *Values `yaml:"values"`
	// Marker targets every scalar marked # {"$imagehook": "<marker>"} under path (also Flux's
	// $imagepolicy and Fleet's $imagescan markers with that id).
	Marker string `yaml:"marker"`
}

// Event returns the target as an event carries it: a copy frozen when the event is accepted.
func (t Target) Event() event.Target {
	et := event.Target{Repo: t.Repo, Path: t.Path, Workload: t.Workload, Namespace: t.Namespace,
		Container: t.Container, Cluster: t.Cluster, WaitRollout: time.Duration(t.WaitRollout), Marker: t.Marker}
	if v := t.Values; v != nil {
		et.Values = &event.Values{File: v.File, Image: v.Image, Registry: v.Registry, Repository: v.Repository, Tag: v.Tag, Digest: v.Digest}
	}
	return et
}

// Values names where a Helm values file keeps the image, as dotted key paths.
type Values struct {
	File       string `yaml:"file"`
	Image      string `yaml:"image"`
	Registry   string `yaml:"registry"`
	Repository string `yaml:"repository"`
	Tag        string `yaml:"tag"`
	Digest     string `yaml:"digest"`
}

// Signature names the header that carries a hex HMAC of the body. The HMAC is keyed with Secret
// when set — and then the hook's token is checked as well, each with its own secret (an old
// hooks.json rule "and: [payload-hmac, url token]") — else with the hook's tokens.
type Signature struct {
	Header    string `yaml:"header"`
	Algorithm string `yaml:"algorithm"` // sha1 | sha256 | sha512
	// Prefix is stripped from the header value, e.g. "sha256=".
	Prefix string `yaml:"prefix"`
	Secret string `yaml:"secret" secret:"true"`
}

// HookMail overrides mail settings per hook.
// Notifier is a chat robot (DingTalk, WeCom, Feishu, Slack) or a generic signed webhook.
type Notifier struct {
	Name string `yaml:"name"`
	// Type is dingtalk, wecom, feishu, slack or webhook.
	Type string `yaml:"type"`
	// URL is the robot's webhook URL; it carries the robot's access token, so it is a secret.
	URL     string `yaml:"url" secret:"true"`
	URLFile string `yaml:"urlFile"`
	// Secret signs the messages: DingTalk's 加签, Feishu's 签名校验, the webhook type's HMAC.
	Secret     string `yaml:"secret" secret:"true"`
	SecretFile string `yaml:"secretFile"`
	// Language is zh (default) or en.
	Language string `yaml:"language"`
	// On is success and/or failure (default both).
	On      []string `yaml:"on"`
	Mention Mention  `yaml:"mention"`
	// RatePerMinute caps messages a minute (DingTalk and WeCom allow 20); reports past it are
	// coalesced into the next message, never dropped.
	RatePerMinute int `yaml:"ratePerMinute"`
}

// Mention names who a message mentions, where the channel supports it.
type Mention struct {
	Mobiles []string `yaml:"mobiles"`
	UserIDs []string `yaml:"userIDs"`
	All     bool     `yaml:"all"`
}

// Reports is who hears about an event of the hook, frozen into the event when it is accepted: its
// mail routing (nil: the global recipients only) and its notifiers.
func (h Hook) Reports() (*event.Mail, []string) {
	var m *event.Mail
	if len(h.Mail.To) > 0 || len(h.Mail.On) > 0 || h.Mail.Language != "" {
		m = &event.Mail{To: h.Mail.To, On: h.Mail.On, Language: h.Mail.Language}
	}
	return m, append([]string(nil), h.Notify...)
}

type HookMail struct {
	To       []string `yaml:"to"`
	On       []string `yaml:"on"` // success, failure
	Language string   `yaml:"language"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if m := envMarked.FindStringSubmatch(n.Value); m != nil {
		// ${VAR} is expanded in strings only, after decoding: name the variable, not the
		// placeholder it stands as while the file is decoded.
		return fmt.Errorf("line %d: ${%s} in a duration: environment variables are expanded in text values only; write the duration (such as 30s)", n.Line, m[1])
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Load reads, expands, defaults and validates the configuration file at p.
func Load(p string) (*Config, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", p, err)
	}
	return c, nil
}

// Parse decodes data strictly, expands ${VAR} with lookup, reads ...File secrets, applies defaults
// and validates.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	// ${VAR} is swapped for a placeholder that YAML reads as plain text anywhere (a flow mapping
	// such as {password: ${TOKEN}} would otherwise not parse), then expanded in decoded strings only:
	// a variable's value can never change the YAML structure.
	data = envRef.ReplaceAll(data, []byte(envMark+"${1}"+envMark))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse: %w", decodeError{err, data})
	}
	// The same bytes as a node tree, for line numbers in validation messages.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		c.root = &root
	}
	if err := c.load(lookup); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeError is a YAML decoding error as a person should read it: a ${VAR} is named as written,
// not as the placeholder it stood as while decoding (which the decoder may quote cut short), and
// a URL the decoder quotes loses its user information.
type decodeError struct {
	err  error
	data []byte
}

var (
	errLine   = regexp.MustCompile(`line (\d+): `)
	quotedEnv = regexp.MustCompile("`" + envMark[:7] + "[^`]*`")
)

func (e decodeError) Error() string {
	lines := bytes.Split(e.data, []byte("\n"))
	msgs := strings.Split(e.err.Error(), "\n")
	for i, m := range msgs {
		if sub := errLine.FindStringSubmatch(m); sub != nil {
			if n, err := strconv.Atoi(sub[1]); err == nil && n >= 1 && n <= len(lines) {
				if vars := envMarked.FindAllSubmatch(lines[n-1], -1); len(vars) > 0 {
					m = quotedEnv.ReplaceAllLiteralString(m, "${"+string(vars[0][1])+"}")
				}
			}
		}
		msgs[i] = envMarked.ReplaceAllString(m, "$${$1}")
	}
	return redact.URLs(strings.Join(msgs, "\n"))
}

func (e decodeError) Unwrap() error { return e.err }

// ForHooksDir is the configuration of the drop-in for the old tool: its hooks.json directory and
// MAIL_* environment, nothing else. It goes through the same expansion, defaults and validation as
// a file.
func ForHooksDir(dir, dataDir string, lookup func(string) (string, bool)) (*Config, error) {
	c := Config{Listen: ":9000", HooksDir: dir, DataDir: dataDir}
	if err := c.load(lookup); err != nil {
		return nil, err
	}
	return &c, nil
}

// load completes a decoded configuration: ${VAR} expansion, ...File secrets, the old tool's MAIL_*
// environment and hooks directory, defaults, validation.
func (c *Config) load(lookup func(string) (string, bool)) error {
	if err := expandEnv(reflect.ValueOf(c).Elem(), lookup); err != nil {
		return err
	}
	if err := c.readSecretFiles(); err != nil {
		return err
	}
	if err := c.readPipelineFiles(); err != nil {
		return err
	}
	var perrs problems
	c.resolvePipelines(&perrs)
	if c.Mail == nil {
		// A drop-in for the old tool: its MAIL_* environment configures mail.
		m, err := MailFromEnv(lookup)
		if err != nil {
			return err
		}
		c.Mail = m
	}
	c.ownHooks = append([]Hook(nil), c.Hooks...)
	if c.HooksDir != "" {
		if len(c.Clusters) == 0 {
			c.Clusters = []Cluster{{Name: InClusterName}}
		}
		dirHooks, err := LoadHooksDir(c.HooksDir, c.Clusters[0].Name, c.LegacyMismatchStatus)
		if err != nil {
			return err
		}
		c.Hooks = append(c.Hooks, dirHooks...)
	}
	c.applyDefaults()
	if err := errors.Join(append(perrs, c.Validate())...); err != nil {
		return err
	}
	c.warn()
	return nil
}

// ReloadHooks reads HooksDir again and returns the file's hooks with the directory's, validated
// against the rest of the configuration. On error the caller keeps serving what it has.
func (c *Config) ReloadHooks() ([]Hook, error) {
	dirHooks, err := LoadHooksDir(c.HooksDir, c.Clusters[0].Name, c.LegacyMismatchStatus)
	if err != nil {
		return nil, err
	}
	next := *c
	next.Hooks = append(append([]Hook(nil), c.ownHooks...), dirHooks...)
	next.applyDefaults()
	if err := next.Validate(); err != nil {
		return nil, err
	}
	return next.Hooks, nil
}

var (
	envRef    = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	envMark   = "__imagehook_env__"
	envMarked = regexp.MustCompile(envMark + `([A-Za-z_][A-Za-z0-9_]*?)` + envMark)
)

// expandEnv replaces ${VAR} in every string of v; an unset variable is an error, so that a typo
// never silently becomes an empty token.
func expandEnv(v reflect.Value, lookup func(string) (string, bool)) error {
	switch v.Kind() {
	case reflect.String:
		var missing []string
		out := envMarked.ReplaceAllStringFunc(v.String(), func(m string) string {
			name := m[len(envMark) : len(m)-len(envMark)]
			val, ok := lookup(name)
			if !ok {
				missing = append(missing, name)
			}
			return val
		})
		if len(missing) > 0 {
			return fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
		}
		v.SetString(out)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				if err := expandEnv(v.Field(i), lookup); err != nil {
					return err
				}
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := expandEnv(v.Index(i), lookup); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return expandEnv(v.Elem(), lookup)
		}
	}
	return nil
}

func readSecret(dst *string, file, field string) error {
	if file == "" {
		return nil
	}
	if *dst != "" {
		return fmt.Errorf("%s: give the secret inline or as a file, not both", field)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = strings.TrimRight(string(data), "\r\n")
	return nil
}

// Blank reports whether a secret is empty or only white space (any Unicode space): such a value
// must never count as a credential, neither in the config nor offered by a caller.
func Blank(s string) bool { return strings.TrimFunc(s, unicode.IsSpace) == "" }

// TrimSecret removes surrounding white space (any Unicode space) from a secret, the same way for
// configured and offered values.
func TrimSecret(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }

func (c *Config) readSecretFiles() error {
	for i := range c.Repos {
		r := &c.Repos[i]
		if err := readSecret(&r.Auth.Password, r.Auth.PasswordFile, fmt.Sprintf("repos[%s].auth.passwordFile", r.Name)); err != nil {
			return err
		}
		if err := readSecret(&r.WriteBack.Token, r.WriteBack.TokenFile, fmt.Sprintf("repos[%s].writeBack.tokenFile", r.Name)); err != nil {
			return err
		}
		for _, f := range []struct {
			dst        *[]byte
			path, name string
		}{{&r.Auth.SSHKey, r.Auth.SSHKeyFile, "auth.sshKeyFile"}, {&r.Auth.CABundle, r.Auth.CAFile, "auth.caFile"}, {&r.SigningKey, r.SigningKeyFile, "signingKeyFile"}} {
			if err := readFile(f.dst, f.path, fmt.Sprintf("repos[%s].%s", r.Name, f.name)); err != nil {
				return err
			}
		}
	}
	for i := range c.Hooks {
		h := &c.Hooks[i]
		if err := readSecret(&h.Token, h.TokenFile, fmt.Sprintf("hooks[%s].tokenFile", h.ID)); err != nil {
			return err
		}
		h.Token = TrimSecret(h.Token)
		for j := range h.Tokens {
			h.Tokens[j] = TrimSecret(h.Tokens[j])
		}
		if h.Signature != nil {
			h.Signature.Secret = TrimSecret(h.Signature.Secret)
		}
	}
	if err := c.Verify.readKey("verify"); err != nil {
		return err
	}
	for i := range c.Hooks {
		if err := c.Hooks[i].Verify.readKey(fmt.Sprintf("hooks[%s].verify", c.Hooks[i].ID)); err != nil {
			return err
		}
	}
	if err := readSecret(&c.Journal.DSN, c.Journal.DSNFile, "journal.dsnFile"); err != nil {
		return err
	}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		if err := readSecret(&n.URL, n.URLFile, fmt.Sprintf("notifiers[%s].urlFile", n.Name)); err != nil {
			return err
		}
		if err := readSecret(&n.Secret, n.SecretFile, fmt.Sprintf("notifiers[%s].secretFile", n.Name)); err != nil {
			return err
		}
	}
	for i := range c.Registries {
		r := &c.Registries[i]
		if err := readSecret(&r.Password, r.PasswordFile, fmt.Sprintf("registries[%s].passwordFile", r.Host)); err != nil {
			return err
		}
		if err := readFile(&r.CABundle, r.CAFile, fmt.Sprintf("registries[%s].caFile", r.Host)); err != nil {
			return err
		}
	}
	if c.Mail != nil {
		if err := readSecret(&c.Mail.Password, c.Mail.PasswordFile, "mail.passwordFile"); err != nil {
			return err
		}
		if c.Mail.CAFile != "" {
			var ca []byte
			if err := readFile(&ca, c.Mail.CAFile, "mail.caFile"); err != nil {
				return err
			}
			c.Mail.CAPEM = string(ca)
		}
	}
	return nil
}

// readFile reads a file the configuration names (a key, a CA) at load, so that a wrong path is a
// config error, not a failure at the first event.
func readFile(dst *[]byte, path, field string) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = data
	return nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = ":9000"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.Limits.HookRate == 0 {
		// Enough for a project-wide registry webhook pushing a release of many images at once.
		c.Limits.HookRate, c.Limits.HookBurst = 200, 1000
	}
	if c.Limits.GlobalRate == 0 {
		c.Limits.GlobalRate, c.Limits.GlobalBurst = 5000, 10000
	}
	if c.Limits.AuthFailureRate == 0 {
		// A registry with a stale token retries a few times; a flood gets 429 and one log line a minute.
		c.Limits.AuthFailureRate, c.Limits.AuthFailureBurst = 1, 20
	}
	if c.Limits.MaxEventsPerRequest == 0 {
		c.Limits.MaxEventsPerRequest = 50
	}
	if c.Limits.MaxFileBytes == 0 {
		c.Limits.MaxFileBytes = manifests.DefaultMaxFileBytes
	}
	if c.Limits.MaxEventBytes == 0 {
		c.Limits.MaxEventBytes = manifests.DefaultMaxEventBytes
	}
	if c.Limits.MaxEventNodes == 0 {
		c.Limits.MaxEventNodes = manifests.DefaultMaxEventNodes
	}
	c.applyBudgetDefaults()
	for i := range c.Repos {
		r := &c.Repos[i]
		if r.Branch == "" {
			r.Branch = "main"
		}
		if r.Author.Name == "" {
			r.Author.Name = "imagehook"
		}
		if r.Author.Email == "" {
			r.Author.Email = "imagehook@localhost"
		}
	}
	if m := c.Mail; m != nil {
		if m.TLS == "" {
			m.TLS = "implicit"
			if m.Port == 587 {
				m.TLS = "starttls"
			} else if m.Port == 25 {
				m.TLS = "none"
			}
		}
		if m.Port == 0 {
			m.Port = map[string]int{"implicit": 465, "starttls": 587, "none": 25}[m.TLS]
		}
		if m.Language == "" {
			m.Language = "zh"
		}
		if m.From == "" {
			m.From = m.Username
		}
		if m.Deadline == 0 {
			m.Deadline = Duration(time.Minute)
		}
	}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		if n.Language == "" {
			n.Language = "zh"
		}
		if n.RatePerMinute == 0 && (n.Type == "dingtalk" || n.Type == "wecom") {
			n.RatePerMinute = 20
		}
	}
	for i := range c.Repos {
		w := &c.Repos[i].WriteBack
		if w.PullRequests() {
			if w.Provider == "" {
				w.Provider = forge.Infer(c.Repos[i].URL)
			}
			if w.Branch == "" {
				w.Branch = "imagehook/{{ .Target.Workload }}"
			}
			if w.PollInterval == 0 {
				w.PollInterval = Duration(time.Minute)
			}
		}
	}
	for i := range c.Hooks {
		if c.Hooks[i].Verify == nil {
			c.Hooks[i].Verify = c.Verify
		}
		if c.Hooks[i].Verify.Resolves() && c.Hooks[i].Pin == "" {
			// What was verified is a digest: write it (tag@digest), so that a tag re-pushed later
			// cannot change what clusters pull. pin: tag opts out where only the registry is asked.
			c.Hooks[i].Pin = "digest"
		}
		defaultTargets(c.Hooks[i].Targets)
	}
	for i := range c.Pipelines {
		for j := range c.Pipelines[i].Stages {
			defaultTargets(c.Pipelines[i].Stages[j].Targets)
		}
	}
}

// defaultTargets fills what a target leaves out, the same for a hook's and a stage's: a pipeline
// hook's targets are copies of its entry stages', and both must name the same places.
func defaultTargets(ts []Target) {
	for j := range ts {
		if ts[j].Repo != "" && ts[j].Path == "" {
			ts[j].Path = "."
		}
	}
}

// Redacted returns a copy with every secret replaced, for check-config and logs.
func (c *Config) Redacted() *Config {
	cp := *c
	cp.Repos = append([]Repo(nil), c.Repos...)
	cp.Hooks = append([]Hook(nil), c.Hooks...)
	cp.Registries = append([]Registry(nil), c.Registries...)
	for i := range cp.Hooks {
		if sig := cp.Hooks[i].Signature; sig != nil {
			dup := *sig
			cp.Hooks[i].Signature = &dup
		}
	}
	if c.Mail != nil {
		m := *c.Mail
		cp.Mail = &m
	}
	eachSecret(reflect.ValueOf(&cp).Elem(), func(f reflect.Value) {
		if f.Kind() == reflect.Slice {
			red := make([]string, f.Len())
			for j := range red {
				red[j] = "***"
			}
			f.Set(reflect.ValueOf(red))
			return
		}
		if f.String() != "" {
			f.SetString("***")
		}
	})
	for i := range cp.Repos {
		cp.Repos[i].URL = redact.URL(cp.Repos[i].URL)
	}
	return &cp
}

// urlWithCredentials parses an http(s) URL that carries a user name (tokens are often given as the
// user name) or a password, so that Secrets can teach the redactor its credential; nil otherwise.
// Which parts of a URL are masked in text is redact.URLs' one rule.
func urlWithCredentials(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil
	}
	return u
}

// Secrets lists every secret value the configuration holds — tagged fields, the password of an
// http(s) repository URL, or its user name when it has no password (a token given as the user
// name) — for the one redactor (package redact). A user name beside a password is not a secret.
func (c *Config) Secrets() []string {
	var out []string
	eachSecret(reflect.ValueOf(c).Elem(), func(f reflect.Value) {
		if f.Kind() == reflect.Slice {
			for j := 0; j < f.Len(); j++ {
				out = append(out, f.Index(j).String())
			}
			return
		}
		out = append(out, f.String())
	})
	for _, n := range c.Notifiers {
		out = append(out, urlTokens(n.URL)...)
	}
	for _, r := range c.Repos {
		if u := urlWithCredentials(r.URL); u != nil {
			if p, ok := u.User.Password(); ok {
				out = append(out, p)
			} else {
				out = append(out, u.User.Username())
			}
		}
	}
	var kept []string
	for _, s := range out {
		if !Blank(s) {
			kept = append(kept, s)
		}
	}
	return kept
}

// urlTokens returns the parts of a robot's URL that carry its credential, so that an endpoint or a
// proxy echoing only a request line ("POST /robot/send?access_token=…") or a path is masked as
// well as the whole URL: every query value (DingTalk's access_token, WeCom's key), and every path
// segment long enough to be a token, with a digit in it (Feishu's hook id, Slack's secret path).
func urlTokens(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 8 {
				out = append(out, v)
			}
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 8 && strings.ContainsAny(seg, "0123456789") {
			out = append(out, seg)
		}
	}
	return out
}

// node returns the value node at a path of mapping keys (string) and sequence indexes (int) in
// the config file, or nil.
func (c *Config) node(path ...any) *yaml.Node {
	if c.root == nil || len(c.root.Content) == 0 {
		return nil
	}
	n := c.root.Content[0]
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return nil
			}
			var next *yaml.Node
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == k {
					next = n.Content[j+1]
				}
			}
			if next == nil {
				return nil
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return nil
			}
			n = n.Content[k]
		}
	}
	return n
}

// at names a node's line for an error message ("" when unknown).
func (c *Config) at(n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", n.Line)
}

// HookByID returns the hook with that id.
func (c *Config) HookByID(id string) (*Hook, bool) {
	for i := range c.Hooks {
		if c.Hooks[i].ID == id {
			return &c.Hooks[i], true
		}
	}
	return nil, false
}

// eachSecret calls fn for every field tagged secret:"true" (a string or a []string) in v, the one
// walk behind Secrets, Redacted and the short-secret warnings.
func eachSecret(v reflect.Value, fn func(reflect.Value)) {
	eachSecretAt(v, nil, func(_ []any, f reflect.Value) { fn(f) })
}

// eachSecretAt is eachSecret that also gives each field's place: YAML keys (string) and sequence
// indexes (int), as Config.node takes them.
func eachSecretAt(v reflect.Value, path []any, fn func([]any, reflect.Value)) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			at := append(slices.Clip(path), key)
			switch {
			case !f.IsExported():
			case f.Tag.Get("secret") == "true":
				fn(at, v.Field(i))
			default:
				eachSecretAt(v.Field(i), at, fn)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // file contents ([]byte): no secret fields inside
		}
		for i := 0; i < v.Len(); i++ {
			eachSecretAt(v.Index(i), append(slices.Clip(path), i), fn)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			eachSecretAt(v.Elem(), path, fn)
		}
	}
}
