package config

import (
	"time"

	"github.com/imagehook/imagehook/forge"
	"github.com/imagehook/imagehook/manifests"
)

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
