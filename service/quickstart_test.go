package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/updater"
)

// TestQuickstartTakesManyDeliveries: the quickstart goes through config.Parse and its defaults, so a
// newcomer can push again and again (it once had a zero rate limit and answered 429 after the first).
func TestQuickstartTakesManyDeliveries(t *testing.T) {
	cfg, err := Quickstart(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.HookRate == 0 || cfg.MaxBodyBytes == 0 {
		t.Fatalf("quickstart config skipped the defaults: %+v", cfg.Limits)
	}
	svc, err := New(cfg, slog.New(slog.DiscardHandler), Options{Updater: updater.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for i := 1; i <= 20; i++ {
		body := strings.Replace(QuickstartPayload, `"tag":"1.1.0"`, fmt.Sprintf(`"tag":"1.%d.0"`, i), 1)
		url := fmt.Sprintf("http://%s/hooks/%s?token=%s&ns=web&workload=deployment/website&container=website&repo_type=aliyun&wait=30s",
			svc.Addr(), QuickstartHook, QuickstartToken)
		resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got map[string]any
		_ = json.Unmarshal(data, &got)
		if resp.StatusCode != http.StatusOK || got["status"] != "succeeded" {
			t.Fatalf("delivery %d: got %d %s, want 200 succeeded", i, resp.StatusCode, data)
		}
	}
}
