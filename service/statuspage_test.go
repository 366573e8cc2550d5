package service

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium returns the headless browser to drive, or skips the test saying how to get one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("IMAGEHOOK_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium installed (apt-get install chromium; .ci/run installs it)")
	return ""
}

// artifacts is where browser screenshots are kept: $IMAGEHOOK_ARTIFACTS, else bin/artifacts in the
// clone (ignored by git).
func artifacts(t *testing.T) string {
	dir := os.Getenv("IMAGEHOOK_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "bin", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStatusPageInBrowser renders the status page and an event page in headless Chromium: the
// workloads view shows what git holds now and the last event, the language follows Accept-Language
// and the switch, the event page shows the timeline, the strict CSP lets the page render, and a
// screenshot is kept.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	h := newHarness(t)
	code, ev := h.post("/hooks/dockerhub?wait=30s&token="+hookToken, []byte(`{"push_data":{"tag":"2.5.0","pusher":"ci"},"repository":{"repo_name":"imagehook-demo/website"}}`))
	if code != 200 || ev["status"] != "succeeded" {
		t.Fatalf("%d %v", code, ev)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", true), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	base := "http://" + h.addr
	text := func(url, wait string) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID(wait))); err != nil {
			t.Fatalf("browser: %s: %v", url, err)
		}
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		return s
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("browser: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}}); err != nil {
		t.Fatalf("browser: %v", err)
	}
	zh := text(base+"/", "workloads")
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The switch overrides the browser's preference.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#lang a[hreflang="en"]`)), chromedp.WaitVisible(chromedp.ID("workloads"))); err != nil {
		t.Fatalf("browser: %v", err)
	}
	en, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	page := text(base+"/ui/events/"+fmt.Sprint(ev["id"])+"?lang=en", "timeline")
	if err := os.WriteFile(filepath.Join(artifacts(t), "status-page.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	// admin: is not set: the page says on itself that it is open (trust row 4).
	for _, want := range []string{"工作负载", "Git 中当前镜像", "registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:2.5.0", "最近事件", "succeeded", "本页对任何能访问 imagehook 的人开放"} {
		if !strings.Contains(zh, want) {
			t.Errorf("Chinese page lacks %q:\n%s", want, zh)
		}
	}
	for _, want := range []string{"Workloads", "In git now", "deployment/website", "Recent events", "This page is open to anyone who can reach imagehook"} {
		if !strings.Contains(en, want) {
			t.Errorf("English page lacks %q:\n%s", want, en)
		}
	}
	for _, want := range []string{"Timeline", "webhook received", "pushed", "+", "website:2.5.0", "admin: is not set"} {
		if !strings.Contains(page, want) {
			t.Errorf("event page lacks %q:\n%s", want, page)
		}
	}
	if len(shot) < 1000 {
		t.Errorf("screenshot of %d bytes", len(shot))
	}
}
