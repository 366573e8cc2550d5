package forge

import (
	"slices"
	"strings"
)

// provider is everything imagehook knows about one forge provider outside its client: Providers,
// Infer, New, VerifyDelivery and MergesAtOnce all read the table below, so that a new forge is the
// file with its client and one entry there.
type provider struct {
	// name is what writeBack.provider says, and what Providers lists.
	name string
	// aliases are other names New builds the same client for (forgejo for gitea). They are no
	// provider of their own: config accepts the name only, and VerifyDelivery knows the name only.
	aliases []string
	// hosts and hostPrefixes are the repository URL hosts Infer answers name for: a host equal to
	// one of hosts, or starting with one of hostPrefixes. No host may match two providers' rules.
	hosts, hostPrefixes []string
	// build makes the provider's client from what New read of the repository and its write-back.
	build func(c *client, at endpoint, w WriteBack) (Forge, error)
	// verify authenticates the provider's webhook deliveries (webhook.go).
	verify webhookAuth
	// mergesAtOnce is set for a forge that schedules no merge for when the checks pass: its
	// AutoMerge merges at once, which config warns of for merge: auto.
	mergesAtOnce bool
}

// endpoint is what New reads of a repository for its provider's client.
type endpoint struct {
	// scheme is the repository URL's, http or https (https for an ssh or scp-like URL).
	scheme string
	// host is the repository URL's host (with its port, unless ssh's) and path its owner/name.
	host, path string
	// api is writeBack.api without a trailing slash; "" for the provider's default.
	api string
}

// providers is the one table of forge providers, in the order Providers (and so config's errors)
// lists them.
var providers = []provider{
	{
		name:         "gitea",
		aliases:      []string{"forgejo"},
		hosts:        []string{"gitea.com", "codeberg.org"},
		hostPrefixes: []string{"gitea.", "forgejo."},
		build:        newGitea,
		// Gitea and Forgejo send GitHub's header as well as their own: either is accepted.
		verify: signedWith(giteaSignature, githubSignature),
	},
	{
		name:   "github",
		hosts:  []string{"github.com"},
		build:  newGitHub,
		verify: signedWith(githubSignature),
	},
	{
		name:         "gitlab",
		hosts:        []string{"gitlab.com"},
		hostPrefixes: []string{"gitlab."},
		build:        newGitLab,
		verify:       verifyGitLab,
	},
	{
		name:         "gitee",
		hosts:        []string{"gitee.com"},
		build:        newGitee,
		verify:       verifyGiteeDelivery,
		mergesAtOnce: true,
	},
	{
		name:         "codeup",
		hosts:        []string{"codeup.aliyun.com"},
		build:        buildCodeup,
		verify:       verifyCodeupDelivery,
		mergesAtOnce: true,
	},
}

// Providers lists the supported providers (the names writeBack.provider accepts), in the order
// config's errors name them.
var Providers = providerNames()

func providerNames() []string {
	names := make([]string, len(providers))
	for i, p := range providers {
		names[i] = p.name
	}
	return names
}

// Infer returns the provider a repository URL's host makes obvious, or "".
func Infer(repoURL string) string {
	host, _, err := splitRepoURL(repoURL)
	if err != nil {
		return ""
	}
	for _, p := range providers {
		if p.recognises(host) {
			return p.name
		}
	}
	return ""
}

// recognises reports whether host is one of the provider's well-known hosts.
func (p provider) recognises(host string) bool {
	return slices.Contains(p.hosts, host) ||
		slices.ContainsFunc(p.hostPrefixes, func(prefix string) bool { return strings.HasPrefix(host, prefix) })
}

// lookup returns the provider named name, or, with aliases, the one name is an alias of.
func lookup(name string, aliases bool) (provider, bool) {
	for _, p := range providers {
		if p.name == name || aliases && slices.Contains(p.aliases, name) {
			return p, true
		}
	}
	return provider{}, false
}

// MergesAtOnce reports whether the provider's forge schedules no merge for when the checks pass,
// so that its AutoMerge merges at once (config warns of it for merge: auto); false for a provider
// imagehook does not know.
func MergesAtOnce(name string) bool {
	p, ok := lookup(name, false)
	return ok && p.mergesAtOnce
}
