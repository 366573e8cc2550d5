package service

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/examples"
	"github.com/imagehook/imagehook/gitops"
)

// Quickstart values: a local hook with a well-known token. Fine on a laptop, never for production,
// which is why the quickstart binds to loopback only.
const (
	QuickstartHook  = "quickstart"
	QuickstartToken = "quickstart-token"
)

// Quickstart prepares dataDir with a local bare manifests repository seeded from the embedded
// examples, and returns the configuration that serves it.
func Quickstart(dataDir, listen string) (*config.Config, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	bare := filepath.Join(abs, "quickstart", "manifests.git")
	if err := os.MkdirAll(filepath.Dir(bare), 0o755); err != nil {
		return nil, fmt.Errorf("quickstart: %w", err)
	}
	author := gitops.Signature{Name: "imagehook quickstart", Email: "imagehook@localhost"}
	if err := gitops.Seed(bare, "main", examples.Manifests(), author); err != nil {
		return nil, fmt.Errorf("quickstart: %w", err)
	}
	// The quickstart is a config file like any other: rendered, then parsed, defaulted and validated
	// by config.Parse, so it gets every default (rate limits, body cap) a user's file gets.
	yml := fmt.Sprintf(`listen: %q
dataDir: %q
repos:
  - name: quickstart
    url: %q
    branch: main
    author: {name: %q, email: %q}
hooks:
  - id: %s
    token: %s
    source: aliyun
    targets:
      - repo: quickstart
        path: apps/website
        workload: deployment/website
        namespace: web
        container: website
    mail: {to: [ops@example.com]}
`, listen, abs, "file://"+bare, author.Name, author.Email, QuickstartHook, QuickstartToken)
	// No environment: a MAIL_* variable on the laptop must not make the quickstart send mail.
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("quickstart: %w", err)
	}
	cfg.Quickstart = true
	return cfg, nil
}

// QuickstartPayload is a real Aliyun ACR push body for the quickstart's website image.
const QuickstartPayload = `{"push_data":{"digest":"sha256:457f4aa83fc9a6663ab9d1b0a6e2dce25a12a943ed5bf2c1747c58d48bbb4917","pushed_at":"2026-11-27 10:00:00","tag":"1.1.0"},"repository":{"date_created":"2026-10-28 21:31:42","name":"website","namespace":"imagehook-demo","region":"cn-hangzhou","repo_authentication_type":"NO_CERTIFIED","repo_full_name":"imagehook-demo/website","repo_origin_type":"NO_CERTIFIED","repo_type":"PRIVATE"}}`

// QuickstartHelp is what the quickstart prints: the curl that triggers an update and how to see it.
func QuickstartHelp(addr, dataDir string) string {
	return fmt.Sprintf(`
imagehook quickstart is running: a local manifests repository, no cluster, mail printed to the log.

Push "1.1.0" of the website image, the way Aliyun ACR calls the old webhook URL:

  curl -sS -X POST 'http://%[1]s/hooks/%[2]s?token=%[3]s&ns=web&workload=deployment/website&container=website&repo_type=aliyun&wait=30s' \
    -H 'Content-Type: application/json' \
    -d '%[4]s'

Then see the commit, which changes exactly the image line:

  git --git-dir %[5]s log -p -1

`, addr, QuickstartHook, QuickstartToken, QuickstartPayload, filepath.Join(dataDir, "quickstart", "manifests.git"))
}
