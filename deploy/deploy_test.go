package deploy

import "testing"

func TestNormalizeRepoURL(t *testing.T) {
	same := []string{
		"https://git.example.com/platform/apps.git",
		"https://git.example.com/platform/apps",
		"https://git.example.com/platform/apps/",
		"HTTPS://Git.Example.com/platform/apps.git",
		"https://bot:token@git.example.com/platform/apps.git",
		"ssh://git@git.example.com/platform/apps.git",
		"ssh://git@git.example.com:22/platform/apps.git",
		"git@git.example.com:platform/apps.git",
		"http://git.example.com:80/platform/apps",
	}
	for _, u := range same {
		if got := NormalizeRepoURL(u); got != "git.example.com/platform/apps" {
			t.Errorf("%s → %s", u, got)
		}
	}
	for _, u := range []string{"https://git.example.com/platform/apps2.git", "https://git.example.com:3000/platform/apps.git", "https://other.example.com/platform/apps"} {
		if NormalizeRepoURL(u) == "git.example.com/platform/apps" {
			t.Errorf("%s matches", u)
		}
	}
}

func TestAnyUnder(t *testing.T) {
	files := []string{"apps/website/deployment.yaml"}
	for _, tt := range []struct {
		dirs []string
		want bool
	}{
		{[]string{""}, true}, {[]string{"."}, true}, {[]string{"/"}, true}, {[]string{"apps"}, true}, {[]string{"apps/website/"}, true},
		{[]string{"./apps/website"}, true}, {[]string{"apps/web"}, false}, {[]string{"clusters"}, false}, {[]string{"clusters", "apps"}, true},
	} {
		if got := anyUnder(files, tt.dirs); got != tt.want {
			t.Errorf("%v: %v", tt.dirs, got)
		}
	}
}
