package config

import (
	"time"

	"github.com/imagehook/imagehook/deploy/deployconfig"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/gitops/gitopsconfig"
	"github.com/imagehook/imagehook/internal/confyaml"
	"github.com/imagehook/imagehook/journal/journalconfig"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/notify/chat"
	"github.com/imagehook/imagehook/notify/mail"
	"github.com/imagehook/imagehook/oci/ociconfig"
	"go.yaml.in/yaml/v3"
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
	// ReadLimits (maxFileBytes, maxEventBytes, maxEventNodes) bound what reading the manifests
	// costs: manifests' section type, inline.
	manifests.ReadLimits `yaml:",inline"`

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
	// Repo is the git part: name, url, branch, pushBranch, auth, author and timeout (gitops'
	// section type, inline: its keys are the entry's own). gitops.Open takes it as it is.
	gitopsconfig.Repo `yaml:",inline"`
	// CommitURL links a commit in reports: "https://git.example.com/platform/apps/commit/{sha}".
	CommitURL string `yaml:"commitURL"`
	// SigningKeyFile is the private key that signs every commit: an armored OpenPGP key, or an
	// OpenSSH key (signed as git does with gpg.format=ssh, which forges show as verified).
	SigningKeyFile       string `yaml:"signingKeyFile" secretfile:"SigningKey"`
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

// JournalConfig is the journal's backend (the journal's section type).
type JournalConfig = journalconfig.Journal

// Watch is where a repository's GitOps tool runs (deploy's section type).
type Watch = deployconfig.Watch

// Namespace is a namespace to read in.
type Namespace = deployconfig.Namespace

// WriteBack is how changes reach a repository's branch (forge's section type).
type WriteBack = forge.WriteBack

// RepoAuth holds a repository's credentials; every secret may be inline, ${ENV} or a ...File path
// (gitops' section type).
type RepoAuth = gitopsconfig.Auth

// Author is the commit author (gitops' section type).
type Author = gitopsconfig.Author

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

// Registry is how imagehook reaches one registry host (oci's section type).
type Registry = ociconfig.Registry

// Cluster is a Kubernetes cluster that no GitOps tool watches, patched directly.
type Cluster struct {
	Name string `yaml:"name"`
	// Kubeconfig is a file path; empty means the in-cluster service account.
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
}

// Mail configures SMTP delivery of results: the mail notifier's own section type.
type Mail = mail.Config

// Hook is one webhook endpoint, POST /hooks/{id}.
type Hook struct {
	ID string `yaml:"id"`
	// Token is the shared secret; Tokens allows several during a rotation.
	Token     string   `yaml:"token" secret:"true"`
	TokenFile string   `yaml:"tokenFile" secretfile:"Token"`
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
		frozen := *v
		et.Values = &frozen
	}
	return et
}

// Values names where a Helm values file keeps the image, as dotted key paths (event.Values).
type Values = event.Values

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

// Notifier is a chat robot (DingTalk, WeCom, Feishu, Slack) or a generic signed webhook: the chat
// notifier's own section type.
type Notifier = chat.Config

// Mention names who a message mentions, where the channel supports it.
type Mention = chat.Mention

// Reports is who hears about an event of the hook, frozen into the event when it is accepted: its
// mail routing (nil: the global recipients only) and its notifiers.
func (h Hook) Reports() (*event.Mail, []string) {
	var m *event.Mail
	if len(h.Mail.To) > 0 || len(h.Mail.On) > 0 || h.Mail.Language != "" {
		m = &event.Mail{To: h.Mail.To, On: h.Mail.On, Language: h.Mail.Language}
	}
	return m, append([]string(nil), h.Notify...)
}

// HookMail overrides mail settings per hook.
type HookMail struct {
	To       []string `yaml:"to"`
	On       []string `yaml:"on"` // success, failure
	Language string   `yaml:"language"`
}

// Duration is a time.Duration written as "30s" in YAML; the type is shared with the components
// that own their sections' types.
type Duration = confyaml.Duration
