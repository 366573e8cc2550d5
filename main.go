// Command imagehook turns registry push webhooks into GitOps commits (and, for clusters no GitOps
// tool watches, direct patches), and mails the result. main only wires: flags, config, logger,
// components, signals.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	// CA roots in the binary, used only when the system has none (the image's empty base): HTTPS
	// git remotes and SMTP over TLS still verify certificates.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/imagehook/imagehook/audit"
	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/fleetimport"
	"github.com/imagehook/imagehook/gitops"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/internal/memlimit"
	"github.com/imagehook/imagehook/lang"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/notify/chat"
	"github.com/imagehook/imagehook/notify/mail"
	"github.com/imagehook/imagehook/oci"
	"github.com/imagehook/imagehook/redact"
	"github.com/imagehook/imagehook/service"
)

// version and revision are set by the build (-ldflags "-X main.version=… -X main.revision=…").
var (
	version  = "dev"
	revision = ""
)

const usage = `imagehook: registry webhooks to GitOps commits.

Usage:
  imagehook serve [--config imagehook.yaml]     run the service (no config: the local quickstart)
  imagehook set-image [--workload kind/name] [--namespace ns] [--container name] [--marker ID] IMAGE PATH...
  imagehook set-image --values FILE (--image-key K | --repository-key K --tag-key K) IMAGE
  imagehook check-config [--config F]           validate and print what would be served
  imagehook history [--config F] [--repo NAME|PATH] [--workload kind/name] [-n N] [--json]
  imagehook send-test-mail --to ADDR [--config F]  send a sample report to check the mail setup
  imagehook send-test-notification --notifier NAME [--config F]   send a sample to a chat robot or webhook
  imagehook pipelines --server URL [--token-file F] [--json]   stages, candidates and gates of a running imagehook
  imagehook approve|reject --server URL --pipeline P --stage S [--digest D] [--comment C] --token-file F
  imagehook hold|release --server URL --pipeline P --stage S [--comment C] --token-file F
  imagehook import fleet-imagescan [--gitrepo FILE] [--root DIR] [--repo-url URL] [--check [--tags FILE]] DIR...
                                                print an imagehook config doing what Fleet's imagescan did
  imagehook version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "set-image":
		err = setImageCommand(args[1:], stdout, stderr)
	case "check-config":
		err = checkConfig(args[1:], stdout)
	case "history":
		err = history(args[1:], stdout)
	case "send-test-mail":
		err = sendTestMail(args[1:], stdout, stderr)
	case "import":
		err = importConfig(args[1:], stdout, stderr)
	case "send-test-notification":
		err = sendTestNotification(args[1:], stdout, stderr)
	case "pipelines":
		err = pipelines(args[1:], stdout)
	case "approve", "reject", "hold", "release":
		err = stageAction(args[0], args[1:], stdout)
	case "version", "--version":
		if rev := buildRevision(); rev != "" {
			fmt.Fprintf(stdout, "imagehook %s (commit %s)\n", buildVersion(), rev)
		} else {
			fmt.Fprintln(stdout, "imagehook", buildVersion())
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "imagehook: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			// Whatever quoted a URL, its user information is not printed.
			fmt.Fprintln(stderr, "imagehook:", redact.URLs(err.Error()))
		}
		return 1
	}
	return 0
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// buildRevision is the commit the binary was built from: the linker's, else the Go toolchain's
// VCS stamp.
func buildRevision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (none: run the quickstart)")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "data directory when no --config is given (quickstart, --hooks-dir)")
	listen := fs.String("listen", "127.0.0.1:9000", "quickstart listen address")
	hooksDir := fs.String("hooks-dir", "", "serve the old tool's hooks.json files from this directory (its ConfigMap, /etc/webhook/source)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	setMemoryLimit(log)
	var cfg *config.Config
	switch {
	case *cfgPath != "":
		if *hooksDir != "" {
			return errors.New("--hooks-dir: set hooksDir in the config file instead")
		}
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	case *hooksDir != "":
		// The drop-in for the old tool: its hooks.json directory and MAIL_* environment, nothing else.
		if cfg, err = config.ForHooksDir(*hooksDir, *dataDir, os.LookupEnv); err != nil {
			return err
		}
	default:
		log.Info("no --config given: running the quickstart", "dataDir", *dataDir)
		if cfg, err = service.Quickstart(*dataDir, *listen); err != nil {
			return err
		}
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	svc, err := service.New(cfg, log, service.Options{})
	if err != nil {
		return err
	}
	if cfg.Quickstart {
		fmt.Fprint(stderr, service.QuickstartHelp(svc.Addr(), cfg.DataDir))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return svc.Run(ctx)
}

// setMemoryLimit gives the Go heap a soft limit from the container's cgroup when GOMEMLIMIT is not
// set, and says what it chose and why.
func setMemoryLimit(log *slog.Logger) {
	c := memlimit.Choose("/sys/fs/cgroup", os.Getenv("GOMEMLIMIT"))
	if c.Limit > 0 {
		debug.SetMemoryLimit(c.Limit)
	}
	log.Info("memory limit", "limitMiB", c.Limit>>20, "reason", string(c.Reason), "detail", c.Detail)
}

func checkConfig(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	cfgPath := fs.String("config", "imagehook.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	// What the service would refuse at start, check-config refuses too.
	if _, err := service.CosignKeys(cfg); err != nil {
		return err
	}
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		return err
	}
	// Redacted masks the secret fields; the redactor also catches a secret repeated elsewhere.
	stdout = &redactingWriter{w: stdout, r: redact.New(cfg.Secrets())}
	fmt.Fprintf(stdout, "# %s is valid; secrets redacted\n", *cfgPath)
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "# warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s", out)
	for _, h := range cfg.Hooks {
		if h.PollOnly() {
			fmt.Fprintf(stdout, "# hooks[%s]: poll-only, asks the registry every %s: %d target(s); serves no webhook URL (give it a token to also receive the registry's webhook)\n",
				h.ID, time.Duration(h.Reconcile.Interval), len(h.Targets))
			continue
		}
		fmt.Fprintf(stdout, "# POST /hooks/%s (%s): %d target(s)\n", h.ID, h.Source, len(h.Targets))
	}
	for _, p := range cfg.Pipelines {
		for _, s := range p.Stages {
			from := "entered by pushes"
			if s.After != "" {
				from = "promoted from " + s.After
			}
			fmt.Fprintf(stdout, "# pipeline %s, stage %s: %s, %d target(s)\n", p.Name, s.Name, from, len(s.Targets))
		}
	}
	return nil
}

// filesNotRead is set-image's error when files that could hold the image were not read: the changes
// printed before it were written, and each file is listed with why.
type filesNotRead []string

func (f filesNotRead) Error() string {
	return fmt.Sprintf("%d file(s) that could hold the image were not read; the changes above were written, these were not looked at:\n  %s",
		len(f), strings.Join(f, "\n  "))
}

func setImageCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("set-image", flag.ContinueOnError)
	workloadArg := fs.String("workload", "", "kind/name of the workload (default: every reference to IMAGE's repository)")
	namespace := fs.String("namespace", "", "namespace of the workload")
	container := fs.String("container", "", "container name")
	pin := fs.String("pin", "", "tag or digest (default: keep digests where the manifest has one)")
	marker := fs.String("marker", "", `rewrite the scalars marked # {"$imagehook": "ID"} (or $imagepolicy/$imagescan) instead of workloads`)
	valuesFile := fs.String("values", "", "rewrite a Helm values FILE instead of workloads (no PATH needed)")
	var values manifests.Values
	fs.StringVar(&values.Image, "image-key", "", "with --values: the dotted key holding the whole image reference")
	fs.StringVar(&values.Registry, "registry-key", "", "with --values: the dotted key holding the registry, if any")
	fs.StringVar(&values.Repository, "repository-key", "", "with --values: the dotted key holding the repository")
	fs.StringVar(&values.Tag, "tag-key", "", "with --values: the dotted key holding the tag")
	fs.StringVar(&values.Digest, "digest-key", "", "with --values: the dotted key holding the digest, if any")
	asJSON := fs.Bool("json", false, "print the changes as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	paths := fs.Args()
	if len(paths) > 0 {
		paths = paths[1:]
	}
	if *valuesFile != "" {
		if len(paths) > 0 {
			return errors.New("set-image: --values names the file; give no PATH")
		}
		paths = []string{*valuesFile}
	}
	if fs.NArg() < 1 || len(paths) == 0 {
		return errors.New("set-image: want IMAGE PATH... (or --values FILE IMAGE)")
	}
	ref, err := imageref.Parse(fs.Arg(0))
	if err != nil {
		return err
	}
	// Every kind of place goes through the same entry point as the service: manifests.Apply.
	place := manifests.Place{Marker: *marker}
	place.Workload.Namespace, place.Workload.Container = *namespace, *container
	if *workloadArg != "" {
		if place.Workload, err = manifests.WorkloadTarget(*workloadArg, *namespace, *container); err != nil {
			return err
		}
	}
	if *valuesFile != "" {
		if values.Image == "" && (values.Repository == "" || values.Tag == "") {
			return errors.New("set-image --values: give --image-key, or --repository-key and --tag-key")
		}
		values.File = filepath.Base(*valuesFile)
		place.Values = &values
	}
	jobs, err := rewriteAll(paths, place, ref, manifests.Options{Pin: manifests.Pin(*pin)})
	if err != nil {
		return err
	}
	return writeRewrites(jobs, *asJSON, stdout, stderr)
}

// rewriteJob is one path's rewrite, computed and not yet written.
type rewriteJob struct {
	root string
	res  manifests.Result
}

// rewriteAll computes every path's rewrite before any is written, so that an error leaves all
// files untouched.
func rewriteAll(paths []string, place manifests.Place, ref imageref.Ref, opts manifests.Options) ([]rewriteJob, error) {
	var jobs []rewriteJob
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		root, rel := p, "."
		if !st.IsDir() {
			root, rel = filepath.Dir(p), filepath.Base(p)
		}
		place.Path = rel
		if place.Values != nil {
			place.Path = "."
		}
		res, err := manifests.Rewrite(os.DirFS(root), place, ref, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		jobs = append(jobs, rewriteJob{root, res})
	}
	return jobs, nil
}

// writeRewrites writes the rewrites and prints their changes. Nothing silent: a file not read for
// a limit makes the run fail (the target may be in it); a file that is not YAML (a template) is
// only warned about.
func writeRewrites(jobs []rewriteJob, asJSON bool, stdout, stderr io.Writer) error {
	var all []manifests.Change
	for _, j := range jobs {
		if err := manifests.WriteFiles(j.root, j.res); err != nil {
			return err
		}
		for _, c := range j.res.Changes {
			c.File = filepath.Join(j.root, c.File)
			all = append(all, c)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			return err
		}
	} else {
		for _, c := range all {
			fmt.Fprintln(stdout, strings.TrimSpace(c.String()))
		}
	}
	var unread filesNotRead
	for _, j := range jobs {
		for _, n := range j.res.NotRead {
			line := filepath.Join(j.root, n.File) + ": " + n.Detail
			if n.Malformed() {
				fmt.Fprintln(stderr, "imagehook: warning: not read:", line)
				continue
			}
			unread = append(unread, line)
		}
	}
	if len(unread) > 0 {
		return unread
	}
	return nil
}

func sendTestMail(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send-test-mail", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (none: the old tool's MAIL_* environment)")
	to := fs.String("to", "", "recipient address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("send-test-mail: --to is required")
	}
	var cfg *config.Config
	var err error
	if *cfgPath != "" {
		cfg, err = config.Load(*cfgPath)
	} else {
		cfg, err = config.Parse(nil, os.LookupEnv)
	}
	if err != nil {
		return err
	}
	if cfg.Mail == nil {
		return errors.New("send-test-mail: no mail configured (a mail: section or MAIL_SMTP_SERVER)")
	}
	log, _ := newLogger(stderr, "text", "info")
	mailer, err := mail.New(*cfg.Mail, log)
	if err != nil {
		return err
	}
	subject := lang.Pick(cfg.Mail.Language, "imagehook: test mail", "Webhooks通知: imagehook 测试邮件")
	body := lang.Pick(cfg.Mail.Language, "This is a test message from imagehook: mail delivery works.\n", "这是一封来自 imagehook 的测试邮件:邮件发送配置正确。\n")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mailer.Send(ctx, []string{*to}, subject, body); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sent a test mail to %s through %s:%d (%s)\n", *to, cfg.Mail.Host, cfg.Mail.Port, cfg.Mail.TLS)
	return nil
}

func history(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file, to name a repository by its name")
	repoArg := fs.String("repo", "", "repository name from the config, or a path to a git repository")
	workload := fs.String("workload", "", "only changes of this kind/name")
	committer := fs.String("committer", "", `read only commits by this committer, "Name <email>" (default: the repository's configured author; every commit for a PATH without it)`)
	n := fs.Int("n", 20, "number of entries (0: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var reader audit.Reader
	if *committer != "" {
		name, email, ok := strings.Cut(strings.TrimSuffix(strings.TrimSpace(*committer), ">"), "<")
		if !ok {
			return fmt.Errorf("--committer %q: want \"Name <email>\"", *committer)
		}
		reader.Committer = gitops.Signature{Name: strings.TrimSpace(name), Email: strings.TrimSpace(email)}
	}
	var entries []audit.Entry
	red := redact.New(nil)
	if st, statErr := os.Stat(*repoArg); *repoArg != "" && statErr == nil && st.IsDir() {
		var err error
		entries, err = reader.History(func(fn gitops.LogFunc) error { return gitops.OpenLog(*repoArg, 0, fn) }, *n, *workload)
		if err != nil {
			return err
		}
	} else {
		if *cfgPath == "" {
			return errors.New("history: --repo PATH, or --config with a repository name")
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		red = redact.New(cfg.Secrets())
		log := slog.New(slog.DiscardHandler)
		repo, err := service.OpenHistoryRepo(cfg, *repoArg, log)
		if err != nil {
			return errors.New(red.String(err.Error()))
		}
		if *committer == "" {
			reader.Committer = repo.Identity()
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		entries, err = reader.History(func(fn gitops.LogFunc) error { return repo.Log(ctx, 0, fn) }, *n, *workload)
		if err != nil {
			return errors.New(red.String(err.Error()))
		}
	}
	out := &redactingWriter{w: stdout, r: red}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCOMMIT\tHOOK\tEVENT\tWORKLOAD\tCONTAINER\tCHANGE\tPUSHER")
	for _, e := range entries {
		pusher := e.Pusher
		if e.PromotedFrom != "" {
			// A promotion names the stage and event it came from, so the chain can be followed.
			pusher = "promoted from " + e.PromotedFrom
			if len(e.ApprovedBy) > 0 {
				pusher += ", approved by " + strings.Join(e.ApprovedBy, ", ")
			}
		}
		if len(e.Changes) == 0 {
			fmt.Fprintf(tw, "%s\t%.10s\t%s\t%s\t-\t-\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Commit, e.Hook, e.Event, e.Image, pusher)
		}
		for _, c := range e.Changes {
			fmt.Fprintf(tw, "%s\t%.10s\t%s\t%s\t%s\t%s\t%s -> %s\t%s\n", e.Time.Local().Format(time.DateTime), e.Commit, e.Hook, e.Event,
				c.Workload, c.Container, c.Old, c.New, pusher)
		}
	}
	return tw.Flush()
}

// redactingWriter masks the configuration's secrets in what a command prints.
type redactingWriter struct {
	w io.Writer
	r *redact.Redactor
}

func (rw *redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(rw.w, rw.r.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func sendTestNotification(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send-test-notification", flag.ContinueOnError)
	cfgPath := fs.String("config", "imagehook.yaml", "config file")
	name := fs.String("notifier", "", "the notifier's name (notifiers[].name)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	for _, nc := range cfg.Notifiers {
		if nc.Name != *name {
			continue
		}
		log, _ := newLogger(stderr, "text", "info")
		n, err := chat.New(nc, log)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		if err := n.SendTest(ctx); err != nil {
			// The robot's URL carries its token: only the redacted error is shown.
			return errors.New(redact.New(cfg.Secrets()).String(err.Error()))
		}
		fmt.Fprintf(stdout, "sent a test notification through %s (%s)\n", nc.Name, nc.Type)
		return nil
	}
	return fmt.Errorf("send-test-notification: no notifier named %q in %s", *name, *cfgPath)
}

func importConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "fleet-imagescan" {
		return errors.New("import: want import fleet-imagescan [--gitrepo FILE] DIR...")
	}
	fs := flag.NewFlagSet("import fleet-imagescan", flag.ContinueOnError)
	gitrepo := fs.String("gitrepo", "", "the GitRepo object's file (repo, branch, paths, imageScanCommit)")
	root := fs.String("root", ".", "the manifests repository's checkout; the config's paths are relative to it")
	repoURL := fs.String("repo-url", "", "the manifests repository's URL (default: the GitRepo's repo)")
	check := fs.Bool("check", false, "run one reconcile pass against the registries (or --tags) and print the rewrite it would make; nothing is written")
	tagsFile := fs.String("tags", "", "with --check: a file of repository:tag[@digest] lines to use instead of the registries")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var dirs []string
	for _, d := range fs.Args() {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		dirs = append(dirs, abs)
	}
	res, err := fleetimport.Import(fleetimport.Options{Root: *root, Dirs: dirs, GitRepo: *gitrepo, RepoURL: *repoURL})
	if err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, "imagehook: note:", n)
	}
	if !*check {
		_, err := stdout.Write(res.Config)
		return err
	}
	var reg fleetimport.Registry
	if *tagsFile != "" {
		data, err := os.ReadFile(*tagsFile)
		if err != nil {
			return err
		}
		if reg, err = fleetimport.ParseTagList(data); err != nil {
			return fmt.Errorf("--tags %s: %w", *tagsFile, err)
		}
	} else {
		hosts, notes := fleetimport.RegistryHosts(&res.Plan, os.LookupEnv, os.ReadFile)
		for _, n := range notes {
			fmt.Fprintln(stderr, "imagehook: note:", n)
		}
		log, _ := newLogger(stderr, "text", "warn")
		reg = oci.New(hosts, nil, log)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintln(stdout, "# one reconcile pass, nothing written:")
	return fleetimport.Check(ctx, &res.Plan, reg, stdout)
}
