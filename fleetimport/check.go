package fleetimport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/manifests"
	"github.com/imagehook/imagehook/oci"
	"github.com/imagehook/imagehook/reconcile"
)

// Registry is what a check asks: the tags of a repository, and the digest of a tag (Fleet reads
// it before writing).
type Registry interface {
	Tags(ctx context.Context, repository string) ([]string, error)
	Resolve(ctx context.Context, image, want string) (string, error)
}

// Check runs one reconcile pass of the plan's live hooks against reg, on the checkout at the
// plan's root, and prints to w the rewrite each would make. Nothing is written.
func Check(ctx context.Context, p *Plan, reg Registry, w io.Writer) error {
	var hooks []config.Hook
	for _, h := range p.Hooks {
		if h.Disabled != "" {
			fmt.Fprintf(w, "hook %s: not checked (%s)\n", h.ID, h.Disabled)
			continue
		}
		ch := config.Hook{ID: h.ID, Tags: h.Tags, Pin: "tag", Reconcile: &config.Reconcile{Interval: config.Duration(h.Interval), Image: h.Image}}
		for _, dir := range h.Paths {
			ch.Targets = append(ch.Targets, config.Target{Repo: p.Repo.Name, Path: dir, Marker: h.Scan.TagName})
		}
		hooks = append(hooks, ch)
	}
	fsys := os.DirFS(p.Root)
	got := &collected{}
	rec := reconcile.New(hooks, map[string]reconcile.Repo{p.Repo.Name: checkout{fsys}}, reg, got, nil, slog.New(slog.DiscardHandler), reconcile.Options{})
	passErr := rec.Pass(ctx)
	for _, h := range hooks {
		ev := got.byHook[h.ID]
		if ev == nil {
			fmt.Fprintf(w, "hook %s: nothing newer than git holds\n", h.ID)
			continue
		}
		pushed, err := imageref.Parse(ev.Push.Image)
		if err != nil {
			return err
		}
		if pushed.Digest, err = reg.Resolve(ctx, ev.Push.Image, ""); err != nil {
			fmt.Fprintf(w, "hook %s: %s: digest not read (%v); Fleet would not write it either\n", h.ID, ev.Push.Image, err)
			continue
		}
		fmt.Fprintf(w, "hook %s: %s@%s\n", h.ID, ev.Push.Image, pushed.Digest)
		for _, t := range h.Targets {
			res, err := manifests.Rewrite(fsys, manifests.Place{Path: t.Path, Marker: t.Marker}, pushed, manifests.Options{Pin: manifests.PinTag})
			for _, n := range res.NotRead {
				fmt.Fprintf(w, "  not read: %s\n", n)
			}
			if err != nil {
				fmt.Fprintf(w, "  %s: %v\n", t.Path, err)
				continue
			}
			for _, c := range res.Changes {
				if c.Changed() {
					fmt.Fprintf(w, "  %s:%d: %s -> %s\n", c.File, c.Line, c.Old, c.New)
				} else {
					fmt.Fprintf(w, "  %s:%d: %s (up to date)\n", c.File, c.Line, c.Old)
				}
			}
		}
	}
	return passErr
}

// RegistryHosts returns the hosts a check asks, with the credentials of each secretRef where its
// placeholders are filled (the variable set, the password file present: lookup and readFile are
// os.LookupEnv and os.ReadFile outside tests), and notes the hosts asked anonymously because they
// are not.
func RegistryHosts(p *Plan, lookup func(string) (string, bool), readFile func(string) ([]byte, error)) ([]oci.Host, []Note) {
	var hosts []oci.Host
	var notes []Note
	for _, r := range p.Registries {
		h := oci.Host{Host: r.Host, Insecure: r.Insecure}
		if r.Secret != "" {
			user, ok := lookup(envName(r.Secret, "USERNAME"))
			pw, err := readFile(secretFile(r.Secret, "password"))
			if ok && err == nil {
				h.Username, h.Password = user, strings.TrimRight(string(pw), "\r\n")
			} else {
				notes = append(notes, Note{Reason: ReasonPlaceholder, Detail: fmt.Sprintf("%s is asked anonymously: %s or %s is not filled in yet", r.Host, envName(r.Secret, "USERNAME"), secretFile(r.Secret, "password"))})
			}
		}
		hosts = append(hosts, h)
	}
	return hosts, notes
}

// checkout reads the local checkout as reconcile reads a repository's tip.
type checkout struct{ fsys fs.FS }

func (c checkout) Read(_ context.Context, fn func(fs.FS) error) error { return fn(c.fsys) }

// collected keeps the events a pass would submit, instead of journaling them.
type collected struct{ byHook map[string]*event.Event }

func (c *collected) Submit(_ context.Context, ev *event.Event) error {
	if c.byHook == nil {
		c.byHook = map[string]*event.Event{}
	}
	c.byHook[ev.Hook] = ev
	return nil
}

// TagList is a registry read from a file, for --check without a registry: one
// repository:tag[@digest] a line, # comments.
type TagList struct {
	tags    map[string][]string
	digests map[string]string
}

// ErrNotListed is TagList's answer for a repository or a digest the file does not give.
var ErrNotListed = errors.New("not in the tag list")

// ParseTagList reads a tag list.
func ParseTagList(data []byte) (*TagList, error) {
	l := &TagList{tags: map[string][]string{}, digests: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ref, err := imageref.Parse(line)
		if err != nil || ref.Tag == "" {
			return nil, fmt.Errorf("line %d: %q: want repository:tag or repository:tag@digest", n, line)
		}
		l.tags[ref.Canonical()] = append(l.tags[ref.Canonical()], ref.Tag)
		if ref.Digest != "" {
			l.digests[ref.Canonical()+":"+ref.Tag] = ref.Digest
		}
	}
	return l, sc.Err()
}

// Tags returns the tags listed for the repository.
func (l *TagList) Tags(_ context.Context, repository string) ([]string, error) {
	ref, err := imageref.Parse(repository)
	if err != nil {
		return nil, err
	}
	tags, ok := l.tags[ref.Canonical()]
	if !ok {
		return nil, fmt.Errorf("%s: %w", repository, ErrNotListed)
	}
	return tags, nil
}

// Resolve returns the digest listed for image (repository:tag).
func (l *TagList) Resolve(_ context.Context, image, _ string) (string, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return "", err
	}
	d, ok := l.digests[ref.Canonical()+":"+ref.Tag]
	if !ok {
		return "", fmt.Errorf("digest of %s: %w (write repository:tag@digest)", image, ErrNotListed)
	}
	return d, nil
}
