package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Trailer keys written by the updater and read back here.
const (
	TrailerEvent  = "Imagehook-Event"
	TrailerHook   = "Imagehook-Hook"
	TrailerImage  = "Imagehook-Image"
	TrailerSource = "Imagehook-Source"
	TrailerPusher = "Imagehook-Pusher"
	TrailerChange = "Imagehook-Change"
)

// Entry is one event's record in the audit trail.
type Entry struct {
	Commit  string        `json:"commit"`
	Time    time.Time     `json:"time"`
	Author  string        `json:"author"`
	Event   string        `json:"event"`
	Hook    string        `json:"hook"`
	Image   string        `json:"image"`
	Source  string        `json:"source"`
	Pusher  string        `json:"pusher,omitempty"`
	Changes []EntryChange `json:"changes"`
}

// EntryChange is one image value a commit changed for an event.
type EntryChange struct {
	Workload  string `json:"workload"`
	Container string `json:"container"`
	Old       string `json:"old"`
	New       string `json:"new"`
}

// FormatChange renders a change for the Imagehook-Change trailer.
func FormatChange(workload, container, old, new string) string {
	return fmt.Sprintf("%s %s %s -> %s", workload, container, old, new)
}

// parseTrailers reads the events of one commit message, in order: each Imagehook-Event line
// starts an entry and the following trailers belong to it.
func parseTrailers(c *object.Commit) []Entry {
	var out []Entry
	for _, line := range strings.Split(c.Message, "\n") {
		key, val, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(key, "Imagehook-") {
			continue
		}
		if key == TrailerEvent {
			out = append(out, Entry{Commit: c.Hash.String(), Time: c.Committer.When, Author: c.Author.Name, Event: val})
			continue
		}
		if len(out) == 0 {
			continue
		}
		e := &out[len(out)-1]
		switch key {
		case TrailerHook:
			e.Hook = val
		case TrailerImage:
			e.Image = val
		case TrailerSource:
			e.Source = val
		case TrailerPusher:
			e.Pusher = val
		case TrailerChange:
			f := strings.Fields(val)
			if len(f) == 5 && f[3] == "->" {
				e.Changes = append(e.Changes, EntryChange{Workload: f[0], Container: f[1], Old: f[2], New: f[4]})
			}
		}
	}
	return out
}

// walk calls fn for the commits reachable from tip, newest first, until fn returns false or
// limit commits were read.
func walk(repo *git.Repository, tip plumbing.Hash, limit int, fn func(*object.Commit) bool) error {
	it, err := repo.Log(&git.LogOptions{From: tip, Order: git.LogOrderCommitterTime})
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	defer it.Close()
	for n := 0; limit <= 0 || n < limit; n++ {
		c, err := it.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if !fn(c) {
			return nil
		}
	}
	return nil
}

// History reads up to n imagehook entries (all when n <= 0) from the commits of a repository,
// newest first; workload filters to one "kind/name".
func History(repo *git.Repository, tip plumbing.Hash, n int, workload string) ([]Entry, error) {
	var out []Entry
	err := walk(repo, tip, 0, func(c *object.Commit) bool {
		for _, e := range parseTrailers(c) {
			if workload != "" && !touches(e, workload) {
				continue
			}
			out = append(out, e)
			if n > 0 && len(out) >= n {
				return false
			}
		}
		return true
	})
	return out, err
}

func touches(e Entry, workload string) bool {
	for _, c := range e.Changes {
		if strings.EqualFold(c.Workload, workload) {
			return true
		}
	}
	return false
}

// OpenHistory reads the audit trail of the repository at path (bare or with a worktree), from HEAD.
func OpenHistory(path string, n int, workload string) ([]Entry, error) {
	repo, err := git.PlainOpen(path)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainOpenWithOptions(path, &git.PlainOpenOptions{DetectDotGit: true})
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	head, err := repo.Head()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return History(repo, head.Hash(), n, workload)
}

// History fetches the branch and reads its audit trail.
func (r *Repo) History(ctx context.Context, n int, workload string) ([]Entry, error) {
	if err := r.Fetch(ctx); err != nil {
		return nil, err
	}
	tip, err := r.Tip()
	if err != nil {
		return nil, err
	}
	return History(r.repo, tip.Hash, n, workload)
}

// FindEvents looks for the given event ids in the trailers of the branch's last depth commits and
// returns the commit that carries each one found. After a crash between a push and the journal
// update, this tells which events already landed.
func (r *Repo) FindEvents(ctx context.Context, ids []string, depth int) (map[string]string, error) {
	found := map[string]string{}
	if len(ids) == 0 {
		return found, nil
	}
	// The push may have landed after the cache last saw the branch.
	if err := r.fetch(ctx, r.pushBranch()); err != nil {
		return nil, err
	}
	ref, err := r.repo.Reference(r.trackingRef(r.pushBranch()), true)
	if err != nil {
		return nil, err
	}
	tip, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	err = walk(r.repo, tip.Hash, depth, func(c *object.Commit) bool {
		for _, e := range parseTrailers(c) {
			if want[e.Event] {
				found[e.Event] = c.Hash.String()
			}
		}
		return len(found) < len(want)
	})
	return found, err
}
