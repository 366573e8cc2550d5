package registry

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// githubPackage is GitHub's "package" event (GitHub Container Registry) and its older
// "registry_package" event; both carry the version and, for containers, the tag and digest.
type githubPackage struct {
	Action          string         `json:"action"`
	Package         *githubPkgBody `json:"package"`
	RegistryPackage *githubPkgBody `json:"registry_package"`
	Sender          struct {
		Login string `json:"login"`
	} `json:"sender"`
	Repository struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
}

type githubPkgBody struct {
	Name string `json:"name"`
	// UpdatedAt moves when a version is published: the signed body's clock, which makes a replay
	// with a new delivery id recognisable as older than what the target runs.
	UpdatedAt      time.Time `json:"updated_at"`
	Namespace      string    `json:"namespace"`
	PackageType    string    `json:"package_type"`
	Ecosystem      string    `json:"ecosystem"`
	PackageVersion struct {
		Version           string `json:"version"`
		ContainerMetadata struct {
			Tag struct {
				Name   string `json:"name"`
				Digest string `json:"digest"`
			} `json:"tag"`
		} `json:"container_metadata"`
		Author struct {
			Login string `json:"login"`
		} `json:"author"`
	} `json:"package_version"`
	Owner struct {
		Login string `json:"login"`
	} `json:"owner"`
	Registry struct {
		URL  string `json:"url"`
		Type string `json:"type"`
	} `json:"registry"`
}

func parseGHCR(r *Request) ([]Parsed, error) {
	switch ev := r.Header.Get("X-GitHub-Event"); ev {
	case "ping":
		return nil, &Ignored{Reason: "github ping"}
	case "", "package", "registry_package":
	default:
		return nil, &Ignored{Reason: "github event " + truncate(ev, 64) + " is not a package push"}
	}
	var p githubPackage
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("ghcr: %v", err)
	}
	if p.Action != "published" && p.Action != "create" && p.Action != "updated" {
		return nil, &Ignored{Reason: "github package action " + truncate(p.Action, 32) + " is not a publish"}
	}
	pkg := p.Package
	if pkg == nil {
		pkg = p.RegistryPackage
	}
	if pkg == nil || pkg.Name == "" {
		return nil, payloadErr("ghcr: package is missing")
	}
	kind := strings.ToLower(pkg.PackageType + pkg.Ecosystem + pkg.Registry.Type)
	if !strings.Contains(kind, "container") && !strings.Contains(kind, "docker") {
		return nil, &Ignored{Reason: "github package is not a container image"}
	}
	pusher := pkg.PackageVersion.Author.Login
	if pusher == "" {
		pusher = p.Sender.Login
	}
	meta := pkg.PackageVersion.ContainerMetadata.Tag
	tag, digest := meta.Name, meta.Digest
	if tag == "" && !strings.HasPrefix(pkg.PackageVersion.Version, "sha256:") {
		tag = pkg.PackageVersion.Version
	}
	if tag == "" {
		return nil, &Ignored{Reason: "github package version without a tag"}
	}
	// GHCR lower-cases owners and names in references.
	var repo string
	switch {
	case pkg.Namespace != "":
		repo = "ghcr.io/" + pkg.Namespace + "/" + pkg.Name
	case pkg.Registry.URL != "":
		// registry_package: the registry URL names host/owner/repository, the package is below it.
		u, err := url.Parse(pkg.Registry.URL)
		if err != nil || u.Host == "" {
			return nil, payloadErr("ghcr: bad registry url")
		}
		repo = u.Host + strings.TrimSuffix(u.Path, "/") + "/" + pkg.Name
	default:
		repo = "ghcr.io/" + pkg.Owner.Login + "/" + pkg.Name
	}
	if r.RegistryHost != "" {
		_, rest, _ := strings.Cut(repo, "/")
		repo = withHost(r.RegistryHost, "", rest)
	}
	at := pkg.UpdatedAt
	if at.Year() < 2000 {
		at = timeZero // test fixtures and some deliveries carry the zero time
	}
	push, err := makePush("ghcr", strings.ToLower(repo)+":"+tag, digest, pusher, at)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
