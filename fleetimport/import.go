// Package fleetimport turns Rancher Fleet's imagescan setup — the imageScans of every fleet.yaml
// under the bundle directories, the # {"$imagescan": …} markers they govern, and optionally the
// GitRepo object — into an imagehook configuration that does the same work: one repository, one
// poll-only hook per scan. What imagehook cannot do exactly as Fleet does is refused with the file
// and line, never approximated. The behaviour matched is Fleet v0.16's
// (internal/cmd/controller/imagescan, pkg/apis/fleet.cattle.io/v1alpha1/imagescan_types.go).
package fleetimport

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagehook/imagehook/imageref"
	"github.com/imagehook/imagehook/manifests"
)

// Fleet's defaults (pkg/durations, gitcommit_job.go).
const (
	// DefaultInterval is Fleet's scan interval, and its GitRepo imageScanInterval, when unset or 0.
	DefaultInterval = 15 * time.Minute
	// DefaultMessage is Fleet's commit message when imageScanCommit.messageTemplate is unset.
	DefaultMessage = "Update from image update automation"
	// FleetVersion is the Fleet release whose imagescan behaviour the import matches.
	FleetVersion = "v0.16"
)

// imagehook's bounds on reconcile.interval (config).
const minInterval, maxInterval = time.Second, 7 * 24 * time.Hour

// Options name what to import.
type Options struct {
	// Root is the checkout of the manifests repository: every path in the config is relative to it.
	Root string
	// Dirs are the bundle directories (relative to Root, or absolute inside it); with a GitRepo and
	// no Dirs, the GitRepo's paths.
	Dirs []string
	// GitRepo is the path of a file holding the GitRepo object (optional).
	GitRepo string
	// RepoURL is the repository's URL when no GitRepo gives it (it replaces the GitRepo's).
	RepoURL string
}

// Result is an import: the configuration as commented YAML, what a person should know about it,
// and the plan it was written from (for Check).
type Result struct {
	Config []byte
	Notes  []Note
	Plan   Plan
}

// Plan is what the configuration says, in the import's terms.
type Plan struct {
	Repo       RepoPlan
	Registries []RegistryPlan
	Hooks      []HookPlan
	// Root is the absolute checkout directory the paths are relative to.
	Root string
}

// RepoPlan is the one repository.
type RepoPlan struct {
	Name, URL, Branch  string
	AuthorName, Email  string
	CommitTemplate     string
	ClientSecret       string
	SSH                bool
	Namespace          string
	CommitInterval     time.Duration
	AuthorFromGitRepo  bool
	MessageFromGitRepo bool
}

// RegistryPlan is one registry host the scans name.
type RegistryPlan struct {
	Host string
	// Secret is the secretRef of the scans on this host ("" for anonymous).
	Secret   string
	Insecure bool
	// Scans are the tagNames on this host.
	Scans []string
}

// HookPlan is one scan's hook.
type HookPlan struct {
	ID   string
	Scan Scan
	// Image is the canonical repository Fleet scans (and writes, in whole and :name markers).
	Image    string
	Tags     string
	Interval time.Duration
	Paths    []string
	Markers  []manifests.Marked
	// Disabled says why the hook is printed commented out ("" when it is live).
	Disabled Reason
}

// Import reads the bundles and returns the configuration, or every refusal (Refused).
func Import(opts Options) (*Result, error) {
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, err
	}
	im := &importer{root: root, fsys: os.DirFS(root), res: &Result{Plan: Plan{Root: root}}}
	if opts.GitRepo != "" {
		data, err := readFile(opts.GitRepo)
		if err != nil {
			return nil, err
		}
		g, notes, err := readGitRepo(filepath.ToSlash(opts.GitRepo), data)
		im.res.Notes = append(im.res.Notes, notes...)
		if err != nil {
			return nil, Refused{asRefusal(err)}
		}
		im.gitrepo = g
	}
	scope, dirs := im.dirs(opts.Dirs)
	scans := im.bundles(dirs)
	marked := im.markers(scope)
	im.unseen(scope, marked)
	im.plan(scans, marked)
	im.repo(opts.RepoURL)
	if len(im.refused) > 0 {
		return nil, im.refused
	}
	im.res.Config = render(&im.res.Plan, im.sources)
	return im.res, nil
}

type importer struct {
	root    string
	fsys    fs.FS
	gitrepo *GitRepo
	res     *Result
	refused Refused
	sources []string
}

func (im *importer) refuse(err error) { im.refused = append(im.refused, asRefusal(err)) }

func (im *importer) note(n Note) { im.res.Notes = append(im.res.Notes, n) }

func asRefusal(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return &Refusal{Reason: ReasonNotReadable, Detail: err.Error()}
}

func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileBytes {
		return nil, Refused{refuse(ReasonNotReadable, p, 0, "larger than %d bytes", MaxFileBytes)}
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	return data, nil
}

// rel turns a directory given on the command line or in the GitRepo into a clean slash path
// inside the root ("" when it escapes).
func (im *importer) rel(d string) string {
	if filepath.IsAbs(d) {
		r, err := filepath.Rel(im.root, d)
		if err != nil {
			return ""
		}
		d = r
	}
	d = path.Clean(filepath.ToSlash(d))
	if d == ".." || strings.HasPrefix(d, "../") || path.IsAbs(d) {
		return ""
	}
	return d
}

// dirs returns the scope Fleet rewrites markers in (the GitRepo's paths, else the directories
// given) and the bundle directories to read.
func (im *importer) dirs(given []string) (scope, dirs []string) {
	if g := im.gitrepo; g != nil {
		paths := g.Paths
		if len(paths) == 0 {
			paths = []string{"/"} // Fleet's default
		}
		for _, p := range paths {
			// Fleet joins each path to the checkout ("/" is its root) and refuses one that escapes it.
			r := im.rel(strings.TrimPrefix(p, "/"))
			if p == "/" || p == "" {
				r = "."
			}
			if r == "" {
				im.refuse(refuse(ReasonInvalid, g.File, g.lineOf("paths"), "path %q resolves outside the repository root (Fleet refuses it)", p))
				continue
			}
			scope = append(scope, r)
		}
	}
	for _, d := range given {
		r := im.rel(d)
		if r == "" {
			im.refuse(refuse(ReasonInvalid, d, 0, "not inside the repository root %s", im.root))
			continue
		}
		if len(scope) > 0 && im.gitrepo != nil && !slices.ContainsFunc(scope, func(s string) bool { return under(r, s) }) {
			im.refuse(refuse(ReasonNotExact, d, 0, "not under the GitRepo's paths (%s): Fleet does not read this bundle", strings.Join(scope, ", ")))
			continue
		}
		dirs = append(dirs, r)
	}
	if len(given) == 0 {
		dirs = scope
	}
	if im.gitrepo == nil {
		scope = dirs
	}
	if len(dirs) == 0 && len(im.refused) == 0 {
		im.refuse(errors.New("no bundle directory: give DIR... or a GitRepo with paths"))
	}
	return scope, dirs
}

// under reports whether slash path p is dir or inside it.
func under(p, dir string) bool {
	return dir == "." || p == dir || strings.HasPrefix(p, dir+"/")
}

// bundles reads the fleet.yaml (or, without one, fleet.yml, as Fleet does) of every directory under dirs.
func (im *importer) bundles(dirs []string) []Scan {
	seen := map[string]bool{}
	var scans []Scan
	for _, d := range dirs {
		err := fs.WalkDir(im.fsys, d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.IsDir() {
				return nil
			}
			if e.Name() == ".git" {
				return fs.SkipDir
			}
			file := ""
			for _, n := range []string{"fleet.yaml", "fleet.yml"} {
				if st, err := fs.Stat(im.fsys, path.Join(p, n)); err == nil && st.Mode().IsRegular() {
					file = path.Join(p, n)
					break
				}
			}
			if file == "" || seen[file] {
				return nil
			}
			seen[file] = true
			data, err := readFile(filepath.Join(im.root, filepath.FromSlash(file)))
			if err != nil {
				im.refuse(err)
				return nil
			}
			s, notes, err := readFleetYAML(file, data)
			im.res.Notes = append(im.res.Notes, notes...)
			if err != nil {
				im.refuse(err)
				return nil
			}
			if len(s) > 0 {
				im.sources = append(im.sources, file)
			}
			scans = append(scans, s...)
			return nil
		})
		if err != nil {
			im.refuse(refuse(ReasonNotReadable, d, 0, "%v", err))
		}
	}
	return scans
}

// markers lists every marked scalar in the scope, once each.
func (im *importer) markers(scope []string) []manifests.Marked {
	seen := map[string]bool{}
	var out []manifests.Marked
	for _, d := range scope {
		marked, notRead, err := manifests.Markers(im.fsys, d, "", manifests.Options{})
		for _, n := range notRead {
			im.note(Note{Reason: ReasonNotReadable, File: n.File, Detail: "not read for markers: " + n.Detail})
		}
		if err != nil {
			im.refuse(refuse(ReasonNotReadable, d, 0, "reading markers: %v", err))
			continue
		}
		for _, m := range marked {
			k := fmt.Sprintf("%s:%d:%s", m.File, m.Line, m.Value)
			if !seen[k] {
				seen[k] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// unseen refuses the files Fleet reads for markers and imagehook does not, or the other way round:
// Fleet reads every .yaml and .yml file under its paths, in hidden directories and through
// symbolic links too; imagehook skips both, and also reads files named Kustomization.
func (im *importer) unseen(scope []string, marked []manifests.Marked) {
	token := []byte(`"$imagescan"`)
	seen := map[string]bool{}
	for _, d := range scope {
		_ = fs.WalkDir(im.fsys, d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || seen[p] {
				return nil
			}
			seen[p] = true
			if ext := path.Ext(p); ext != ".yaml" && ext != ".yml" {
				return nil
			}
			hidden := slices.ContainsFunc(strings.Split(path.Dir(p), "/"), func(c string) bool { return strings.HasPrefix(c, ".") && c != "." && c != ".." })
			link := e.Type()&fs.ModeSymlink != 0
			if !hidden && !link {
				return nil
			}
			data, err := fs.ReadFile(im.fsys, p)
			if err != nil || !bytes.Contains(data, token) {
				return nil
			}
			why := "is in a hidden directory"
			if link {
				why = "is a symbolic link"
			}
			im.refuse(refuse(ReasonNotExact, p, 0, "holds $imagescan markers Fleet rewrites, but %s, which imagehook does not read; move the file", why))
			return nil
		})
	}
	for _, m := range marked {
		if m.Key == "$imagescan" && path.Base(m.File) == "Kustomization" {
			im.refuse(refuse(ReasonNotExact, m.File, m.Line, "Fleet reads only .yaml and .yml files and leaves this marker alone; imagehook would rewrite it; rename the file kustomization.yaml or drop the marker"))
		}
	}
}

// plan translates each scan into a hook.
func (im *importer) plan(scans []Scan, marked []manifests.Marked) {
	byName := map[string]Scan{}
	ids := map[string]bool{}
	for _, s := range scans {
		if s.Image == "" {
			im.note(Note{Reason: ReasonIgnored, File: s.File, Line: s.Line, Detail: fmt.Sprintf("imageScans[%d] has no image: Fleet skips it, and so does the import", s.Index)})
			continue
		}
		if s.TagName == "" {
			im.refuse(refuse(ReasonInvalid, s.File, s.Line, "imageScans[%d]: tagName is required (Fleet refuses the bundle: \"the name of scan is required\")", s.Index))
			continue
		}
		if strings.ContainsAny(s.TagName, ":\"\\") || strings.TrimSpace(s.TagName) != s.TagName {
			im.refuse(refuse(ReasonNotExact, s.File, s.lineOf("tagName"), "tagName %q: a colon, quote, backslash or surrounding space makes the marker's name ambiguous", s.TagName))
			continue
		}
		if at, ok := envReference(s); ok {
			im.refuse(refuse(ReasonNotExact, s.File, s.lineOf(at), "%s holds ${…}, which imagehook's config expands as an environment variable", at))
			continue
		}
		if prev, ok := byName[s.TagName]; ok {
			// Fleet keeps one setter per name for the whole GitRepo: the last scan wins everywhere.
			im.refuse(refuse(ReasonAmbiguous, s.File, s.lineOf("tagName"), "tagName %q is also %s's: Fleet rewrites every marker of that name with whichever scan comes last; give each scan its own name", s.TagName, prev.At("tagName")))
			continue
		}
		byName[s.TagName] = s
		h, ok := im.hook(s, marked)
		if !ok {
			continue
		}
		h.ID = hookID(s.TagName, ids)
		im.res.Plan.Hooks = append(im.res.Plan.Hooks, h)
	}
	for _, m := range marked {
		if _, ok := byName[m.ID]; !ok && m.Key == "$imagescan" {
			im.note(Note{Reason: ReasonNoMarker, File: m.File, Line: m.Line, Detail: fmt.Sprintf("marker %q names no scan: Fleet leaves it alone, and so does imagehook", m.ID)})
		}
	}
	im.registries()
}

// envReference names a field of the scan holding "${", which the config would read as a variable.
func envReference(s Scan) (string, bool) {
	for _, f := range []struct{ name, v string }{{"image", s.Image}, {"tagName", s.TagName}, {"range", s.Range}, {"order", s.Order}, {"secretRef", s.SecretRef}} {
		if strings.Contains(f.v, "${") {
			return f.name, true
		}
	}
	return "", false
}

// hookID makes a hook id of a tagName: the characters a hook id must not hold become '-'.
func hookID(tagName string, ids map[string]bool) string {
	id := strings.Map(func(r rune) rune {
		if strings.ContainsRune("/?#% ", r) || r < ' ' {
			return '-'
		}
		return r
	}, tagName)
	base := id
	for i := 2; ids[id]; i++ {
		id = fmt.Sprintf("%s-%d", base, i)
	}
	ids[id] = true
	return id
}

// hook translates one scan; false when it is refused.
func (im *importer) hook(s Scan, marked []manifests.Marked) (HookPlan, bool) {
	h := HookPlan{Scan: s}
	ref, err := imageref.Parse(s.Image)
	if err != nil {
		im.refuse(refuse(ReasonInvalid, s.File, s.lineOf("image"), "image: %v", err))
		return h, false
	}
	h.Image = ref.Canonical()
	interval, iok := im.interval(s)
	tags, tok := im.policy(s)
	h.Interval, h.Tags = interval, tags
	ok := iok && tok
	if s.Suspend {
		h.Disabled = ReasonSuspended
		im.note(Note{Reason: ReasonSuspended, File: s.File, Line: s.lineOf("suspend"), Detail: fmt.Sprintf("scan %q is suspended: its hook is printed commented out", s.TagName)})
	}
	bundle := path.Dir(s.File)
	for _, m := range marked {
		if m.ID != s.TagName {
			continue
		}
		if !im.markerExact(s, h.Image, m) {
			ok = false
			continue
		}
		h.Markers = append(h.Markers, m)
		dir := path.Dir(m.File)
		if under(m.File, bundle) {
			dir = bundle
		}
		if !slices.Contains(h.Paths, dir) {
			h.Paths = append(h.Paths, dir)
		}
	}
	h.Paths = outermost(h.Paths)
	if ok && len(h.Markers) == 0 && h.Disabled == "" {
		h.Disabled = ReasonNoMarker
		im.note(Note{Reason: ReasonNoMarker, File: s.File, Line: s.lineOf("tagName"), Detail: fmt.Sprintf("no marker names scan %q: Fleet would write nothing; its hook is printed commented out", s.TagName)})
	}
	return h, ok
}

// outermost drops the directories inside another of the list, so that no marker is rewritten twice.
func outermost(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if !slices.ContainsFunc(dirs, func(o string) bool { return o != d && under(d, o) }) {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// markerExact checks that imagehook writes exactly the bytes Fleet writes at a marker.
func (im *importer) markerExact(s Scan, canonical string, m manifests.Marked) bool {
	if m.Key != "$imagescan" {
		im.refuse(refuse(ReasonNotExact, m.File, m.Line, "a %s marker named %q: Fleet leaves it alone, but imagehook's marker target for scan %q would rewrite it; rename one of them", m.Key, m.ID, s.TagName))
		return false
	}
	if m.Field == "tag" {
		return true // Fleet and imagehook both write the tag alone
	}
	if m.Field == "digest" && imageref.ValidDigest(m.Value) {
		im.refuse(refuse(ReasonNotExact, m.File, m.Line, "this :digest marker holds a bare digest; Fleet writes the whole reference (%s:<tag>@<digest>) here, imagehook would write the digest alone; write the value as Fleet would", canonical))
		return false
	}
	ref, err := imageref.Parse(m.Value)
	if err != nil {
		im.refuse(refuse(ReasonNotExact, m.File, m.Line, "marked value %q is not an image reference imagehook can rewrite: %v", m.Value, err))
		return false
	}
	if ref.Repo != canonical {
		// Fleet writes its canonical name (go-containerregistry's) at whole, :name and :digest
		// markers; imagehook keeps the spelling written. They agree once the value is spelled so.
		want := canonical + ":" + ref.Tag
		if ref.Tag == "" {
			want = canonical
		}
		im.refuse(refuse(ReasonNotExact, m.File, m.Line, "holds repository %s; Fleet writes %s here, imagehook keeps the spelling written: write the value as %s first", ref.Repo, canonical, want))
		return false
	}
	return true
}

// interval is the scan's interval as Fleet reads it (unset or 0: 15m), inside imagehook's bounds.
func (im *importer) interval(s Scan) (time.Duration, bool) {
	if s.Interval == "" || s.Interval == "0" {
		im.note(Note{Reason: ReasonDefault, File: s.File, Line: s.lineOf("interval"), Detail: fmt.Sprintf("scan %q has no interval: Fleet's default, %s, is written", s.TagName, duration(DefaultInterval))})
		return DefaultInterval, true
	}
	d, err := time.ParseDuration(s.Interval)
	switch {
	case err != nil:
		im.refuse(refuse(ReasonInvalid, s.File, s.lineOf("interval"), "interval %q: %v (Fleet refuses it too)", s.Interval, err))
	case d == 0:
		return DefaultInterval, true
	case d < minInterval || d > maxInterval:
		im.refuse(refuse(ReasonNotExact, s.File, s.lineOf("interval"), "interval %s: imagehook polls every %s to %s", d, minInterval, maxInterval))
	default:
		return d, true
	}
	return 0, false
}

// policy translates the scan's policy into a tags: policy, as Fleet's latestTag chooses: semver
// when given (even beside alphabetical), else alphabetical, else semver "*".
func (im *importer) policy(s Scan) (string, bool) {
	switch {
	case s.Semver:
		if s.Alphabetical {
			im.note(Note{Reason: ReasonIgnored, File: s.File, Line: s.lineOf("alphabetical"), Detail: fmt.Sprintf("scan %q gives semver and alphabetical: Fleet uses semver and ignores alphabetical, and so does the import", s.TagName)})
		}
		if _, err := semver.NewConstraint(s.Range); err != nil {
			im.refuse(refuse(ReasonInvalid, s.File, s.lineOf("range"), "semver range %q: %v (Fleet's semver library refuses it, and the scan fails)", s.Range, err))
			return "", false
		}
		if strings.ContainsAny(s.Range, "\n\r") {
			im.refuse(refuse(ReasonNotExact, s.File, s.lineOf("range"), "semver range spans lines"))
			return "", false
		}
		return "semver:" + s.Range, true
	case s.Alphabetical:
		// Fleet: "" and DESC (any case) choose the greatest tag, anything else the least — its
		// API comment says the opposite of its code; the code is what ran.
		switch strings.ToUpper(s.Order) {
		case "", "DESC":
			return "alphabetical:highest", true
		case "ASC":
			return "alphabetical:lowest", true
		}
		im.refuse(refuse(ReasonNotExact, s.File, s.lineOf("order"), "alphabetical order %q: Fleet reads anything but desc as asc (the least tag); write asc or desc", s.Order))
		return "", false
	}
	im.note(Note{Reason: ReasonDefault, File: s.File, Line: s.Line, Detail: fmt.Sprintf("scan %q has no policy: Fleet's default, semver \"*\" (no pre-releases), is written", s.TagName)})
	return "semver:*", true
}

// registries gives every host the scans name an entry, with the credentials of its secretRef.
func (im *importer) registries() {
	byHost := map[string]*RegistryPlan{}
	var hosts []string
	secretAt := map[string]string{}
	for _, h := range im.res.Plan.Hooks {
		ref, _ := imageref.Parse(h.Image)
		host := ref.Host()
		r := byHost[host]
		if r == nil {
			reg, err := name.NewRegistry(host)
			r = &RegistryPlan{Host: host, Insecure: err == nil && reg.Scheme() == "http"}
			byHost[host] = r
			hosts = append(hosts, host)
		}
		r.Scans = append(r.Scans, h.Scan.TagName)
		sec := h.Scan.SecretRef
		switch {
		case sec == "":
		case r.Secret == "":
			r.Secret, secretAt[host] = sec, h.Scan.At("secretRef")
		case r.Secret != sec:
			im.refuse(refuse(ReasonNotExact, h.Scan.File, h.Scan.lineOf("secretRef"), "secretRef %q for %s, where %s names %q: imagehook asks a registry host with one credential", sec, host, secretAt[host], r.Secret))
		}
	}
	for _, h := range im.res.Plan.Hooks {
		ref, _ := imageref.Parse(h.Image)
		if r := byHost[ref.Host()]; r.Secret != "" && h.Scan.SecretRef == "" {
			im.note(Note{Reason: ReasonNotExact, File: h.Scan.File, Line: h.Scan.Line, Detail: fmt.Sprintf("scan %q has no secretRef but shares %s with one that does: imagehook asks with that credential, Fleet asked anonymously", h.Scan.TagName, r.Host)})
		}
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		r := byHost[host]
		if r.Secret != "" {
			im.note(Note{Reason: ReasonPlaceholder, Detail: fmt.Sprintf("registries[%s]: fill in the user name and password of Secret %s (%s, %s)", host, r.Secret, envName(r.Secret, "USERNAME"), secretFile(r.Secret, "password"))})
		}
		im.res.Plan.Registries = append(im.res.Plan.Registries, *r)
	}
}

// repo plans the repository from the GitRepo (or the URL given).
func (im *importer) repo(url string) {
	rp := &im.res.Plan.Repo
	rp.Name, rp.URL, rp.CommitInterval = "fleet", url, DefaultInterval
	g := im.gitrepo
	if g == nil {
		rp.Branch = "main"
		im.note(Note{Reason: ReasonDefault, Detail: "no GitRepo given: branch main assumed and imagehook's commit author; check repos[0]"})
		if url == "" {
			im.refuse(errors.New("no repository URL: give --gitrepo FILE or --repo-url URL"))
		}
		rp.SSH = isSSH(url)
		return
	}
	if g.Name != "" {
		rp.Name = strings.Map(func(r rune) rune {
			if r == '/' || r == ' ' {
				return '-'
			}
			return r
		}, g.Name)
	}
	for _, f := range []struct{ key, v string }{{"repo", g.Repo}, {"branch", g.Branch}, {"authorName", g.AuthorName}, {"authorEmail", g.AuthorEmail}, {"messageTemplate", g.MessageTemplate}, {"clientSecretName", g.ClientSecretName}} {
		if strings.Contains(f.v, "${") {
			im.refuse(refuse(ReasonNotExact, g.File, g.lineOf(f.key), "%s holds ${…}, which imagehook's config expands as an environment variable", f.key))
		}
	}
	rp.Namespace = g.Namespace
	if rp.URL == "" {
		rp.URL = g.Repo
	}
	if rp.URL == "" {
		im.refuse(refuse(ReasonInvalid, g.File, g.lineOf("repo"), "the GitRepo names no repo"))
	}
	rp.SSH = isSSH(rp.URL)
	rp.Branch = g.Branch
	if g.Branch == "" {
		im.refuse(refuse(ReasonNotExact, g.File, g.lineOf("branch"), "the GitRepo names no branch: Fleet's imagescan clones refs/heads/ and fails; name the branch it should push to"))
	}
	if g.Revision != "" {
		im.note(Note{Reason: ReasonIgnored, File: g.File, Line: g.lineOf("revision"), Detail: "revision: Fleet deploys that revision, but imagescan pushes to the branch, and so does imagehook"})
	}
	rp.ClientSecret = g.ClientSecretName
	if g.ClientSecretName == "" {
		im.note(Note{Reason: ReasonIgnored, File: g.File, Line: g.lineOf("kind"), Detail: "no clientSecretName: imagehook pushes without credentials (Fleet's imagescan refuses to)"})
	} else {
		im.note(Note{Reason: ReasonPlaceholder, File: g.File, Line: g.lineOf("clientSecretName"), Detail: fmt.Sprintf("repos[%s].auth: fill in the write credentials of Secret %s", rp.Name, g.ClientSecretName)})
	}
	if g.ImageScanInterval != "" && g.ImageScanInterval != "0" {
		d, err := time.ParseDuration(g.ImageScanInterval)
		if err != nil {
			im.refuse(refuse(ReasonInvalid, g.File, g.lineOf("imageScanInterval"), "imageScanInterval %q: %v", g.ImageScanInterval, err))
		}
		rp.CommitInterval = d
	}
	rp.AuthorName, rp.Email = g.AuthorName, g.AuthorEmail
	rp.AuthorFromGitRepo = g.AuthorName != "" || g.AuthorEmail != ""
	if !rp.AuthorFromGitRepo {
		im.note(Note{Reason: ReasonDefault, File: g.File, Line: g.lineOf("kind"), Detail: "imageScanCommit names no author: imagehook's default author is used"})
	}
	msg := g.MessageTemplate
	if msg == "" {
		msg = DefaultMessage
	}
	rp.MessageFromGitRepo = g.MessageTemplate != ""
	if !staticTemplate(msg) {
		// Fleet executes it with the string "no data! yet" as its data: nothing to translate.
		im.refuse(refuse(ReasonNotExact, g.File, g.lineOf("messageTemplate"), "messageTemplate has template actions: Fleet fills them from no data (\"no data! yet\"); write the message as plain text"))
		return
	}
	rp.CommitTemplate = msg
}

// staticTemplate reports whether a Go template is plain text (no actions, no delimiters left).
func staticTemplate(s string) bool {
	t, err := template.New("m").Parse(s)
	if err != nil || t.Tree == nil {
		return false
	}
	for _, n := range t.Tree.Root.Nodes {
		if n.Type() != parse.NodeText {
			return false
		}
	}
	return !strings.Contains(s, "{{")
}

func isSSH(url string) bool {
	return strings.HasPrefix(url, "ssh://") || !strings.Contains(url, "://") && strings.Contains(url, "@")
}

// envName is a ${VAR} placeholder's variable for a Secret's field.
func envName(secret, field string) string {
	v := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, secret)
	return "FLEET_" + v + "_" + field
}

// secretFile is a passwordFile placeholder for a Secret's field: where the Secret would be mounted.
func secretFile(secret, field string) string {
	return "/run/secrets/imagehook/" + secret + "/" + field
}
