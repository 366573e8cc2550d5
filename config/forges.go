package config

import (
	"fmt"

	"github.com/imagehook/imagehook/forge"
)

// CodeupRepo names a repository on Alibaba Cloud Codeup for its OpenAPI (forge's type).
type CodeupRepo = forge.CodeupRepo

// validateForge checks the keys only one provider reads.
func validateForge(w WriteBack, errs *problems, where string) {
	if (w.Codeup.OrganizationID != "" || w.Codeup.RepositoryID != "") && w.Provider != "codeup" {
		errs.add("%s.codeup: only read by provider codeup (this repository's is %q)", where, w.Provider)
	}
}

// warnForges says what a provider does not offer that the configuration asks for: a forge that
// schedules no merge for when the checks pass (Gitee, Codeup: forge.MergesAtOnce) makes merge:
// auto merge at once (and refuses while its required reviews or checks are missing); Codeup's
// change requests have no labels.
func warnForges(c *Config) {
	for i, r := range c.Repos {
		w := r.WriteBack
		if !w.PullRequests() {
			continue
		}
		if w.AutoMerges() && forge.MergesAtOnce(w.Provider) {
			c.warnings = append(c.warnings, fmt.Sprintf("%s%s: %s schedules no merge for when checks pass: imagehook merges at once, while the pull request ends in its commit, and %s refuses while required reviews or checks are missing",
				c.name([]any{"repos", i, "writeBack", "merge"}), lineOf(c.node("repos", i, "writeBack", "merge")), w.Provider, w.Provider))
		}
		if len(w.Labels) > 0 && w.Provider == "codeup" {
			c.warnings = append(c.warnings, fmt.Sprintf("%s%s: Codeup change requests have no labels; they are not set (each event says so)",
				c.name([]any{"repos", i, "writeBack", "labels"}), lineOf(c.node("repos", i, "writeBack", "labels"))))
		}
	}
}
