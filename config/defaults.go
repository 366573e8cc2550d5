package config

import (
	"time"
)

// DefaultDataDir is dataDir's default, also the --data-dir flag's when no config file is given.
const DefaultDataDir = "./data"

// applyDefaults fills what the file leaves out, section by section; each section's defaults are
// set by the section itself.
func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = ":9000"
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	c.Limits.setDefaults()
	for i := range c.Repos {
		c.Repos[i].setDefaults()
	}
	if c.Mail != nil {
		c.Mail.SetDefaults()
	}
	for i := range c.Notifiers {
		c.Notifiers[i].SetDefaults()
	}
	if l := c.ApprovalLinks; l != nil && l.TTL == 0 {
		l.TTL = Duration(24 * time.Hour)
	}
	for i := range c.Hooks {
		c.Hooks[i].setDefaults(c.Verify)
	}
	for i := range c.Pipelines {
		for j := range c.Pipelines[i].Stages {
			defaultTargets(c.Pipelines[i].Stages[j].Targets)
		}
	}
}

func (l *Limits) setDefaults() {
	if l.HookRate == 0 {
		// Enough for a project-wide registry webhook pushing a release of many images at once.
		l.HookRate, l.HookBurst = 200, 1000
	}
	if l.GlobalRate == 0 {
		l.GlobalRate, l.GlobalBurst = 5000, 10000
	}
	if l.AuthFailureRate == 0 {
		// A registry with a stale token retries a few times; a flood gets 429 and one log line a minute.
		l.AuthFailureRate, l.AuthFailureBurst = 1, 20
	}
	if l.MaxEventsPerRequest == 0 {
		l.MaxEventsPerRequest = 50
	}
	l.ReadLimits.SetDefaults()
	l.setBudgetDefaults()
}

func (r *Repo) setDefaults() {
	if r.Branch == "" {
		r.Branch = "main"
	}
	if r.Author.Name == "" {
		r.Author.Name = "imagehook"
	}
	if r.Author.Email == "" {
		r.Author.Email = "imagehook@localhost"
	}
	r.WriteBack.SetDefaults(r.URL)
}

// setDefaults gives the hook the top-level verify when it names none, and pins digests where a
// digest was verified.
func (h *Hook) setDefaults(verify *Verify) {
	if h.Verify == nil {
		h.Verify = verify
	}
	if h.Verify.Resolves() && h.Pin == "" {
		// What was verified is a digest: write it (tag@digest), so that a tag re-pushed later
		// cannot change what clusters pull. pin: tag opts out where only the registry is asked.
		h.Pin = "digest"
	}
	defaultTargets(h.Targets)
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
