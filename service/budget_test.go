package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/journal"
)

// postHeaders posts like harness.post and returns the answer's headers too.
func (h *harness) postHeaders(path string, body []byte) (int, map[string]any, http.Header) {
	h.t.Helper()
	resp, err := http.Post("http://"+h.addr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		h.t.Fatalf("body is not JSON: %q", data)
	}
	return resp.StatusCode, m, resp.Header
}

// harborPushes is one Harbor delivery carrying n pushes of the website image.
func harborPushes(n int) []byte {
	var res []string
	for i := range n {
		res = append(res, fmt.Sprintf(`{"tag":"3.0.%d","resource_url":"registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:3.0.%d"}`, i, i))
	}
	return []byte(`{"type":"PUSH_ARTIFACT","occur_at":1586922308,"operator":"ci","event_data":{"resources":[` + strings.Join(res, ",") +
		`],"repository":{"name":"website","namespace":"imagehook-demo","repo_full_name":"imagehook-demo/website"}}}`)
}

// TestRateBudgetsCountPushes (trust row 5): the hook's rate budget counts the pushes a request
// carries, not the request. With a burst of 3 and no refill to speak of, one delivery of 3 pushes
// spends it: the next delivery, of one push, is answered 429 with Retry-After and reason
// "rate limited" (counting requests, it was accepted), and the refusals are logged once a minute.
func TestRateBudgetsCountPushes(t *testing.T) {
	h := newHarness(t, "limits: {hookRate: 0.001, hookBurst: 3}")
	code, resp, _ := h.postHeaders("/hooks/harbor?token="+hookToken, harborPushes(3))
	if ids, _ := resp["ids"].([]any); code != http.StatusAccepted || len(ids) != 3 {
		t.Fatalf("3 pushes in one delivery: %d %v", code, resp)
	}
	code, resp, hdr := h.postHeaders("/hooks/harbor?token="+hookToken, harborPushes(1))
	if code != http.StatusTooManyRequests || resp["reason"] != "rate limited" || hdr.Get("Retry-After") == "" {
		t.Errorf("a push past the hook's budget of 3 pushes: %d %v Retry-After %q", code, resp, hdr.Get("Retry-After"))
	}
	for range 5 {
		if code, _, _ := h.postHeaders("/hooks/harbor?token="+hookToken, harborPushes(1)); code != http.StatusTooManyRequests {
			t.Errorf("a push past the budget: %d", code)
		}
	}
	// Logged with its reason, once a minute however many follow.
	if n := strings.Count(h.logs.String(), `reason="rate limited"`); n != 1 {
		t.Errorf("%d log lines say the hook is rate limited, want 1:\n%s", n, h.logs.String())
	}
}

// TestJournalBudget (trust row 5): while the git server hangs, nothing finishes, so events pile up
// in the journal: past limits.maxPendingPerHook for one hook, and past limits.maxPending for all,
// a delivery is answered 429 with Retry-After and reason "journal full" before anything is
// written; a delivery of more pushes than are left is refused whole. Once git answers, every
// accepted event finishes and the journal holds exactly those.
func TestJournalBudget(t *testing.T) {
	h := newHarness(t, "limits: {maxPendingPerHook: 4, maxPending: 6}")
	h.git.Stall.Store(true)
	t.Cleanup(func() { h.git.Stall.Store(false) }) // before the harness stops: its batch finishes
	dockerhub := func(tag string) []byte {
		return []byte(`{"push_data":{"tag":"` + tag + `"},"repository":{"repo_name":"imagehook-demo/website"}}`)
	}
	var accepted []string
	expect := func(what, hook string, body []byte, want int) {
		t.Helper()
		code, resp, hdr := h.postHeaders("/hooks/"+hook+"?token="+hookToken, body)
		if code != want {
			t.Fatalf("%s: %d %v, want %d", what, code, resp, want)
		}
		switch code {
		case http.StatusAccepted:
			if ids, ok := resp["ids"].([]any); ok {
				for _, id := range ids {
					accepted = append(accepted, id.(string))
				}
			} else {
				accepted = append(accepted, resp["id"].(string))
			}
		case http.StatusTooManyRequests:
			if resp["reason"] != "journal full" || hdr.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(resp["error"]), "limits.maxPending") {
				t.Errorf("%s: %v Retry-After %q, want reason journal full", what, resp, hdr.Get("Retry-After"))
			}
		}
	}
	for i := range 4 {
		expect(fmt.Sprintf("dockerhub push %d", i+1), "dockerhub", dockerhub(fmt.Sprintf("4.0.%d", i)), http.StatusAccepted)
	}
	expect("dockerhub push 5", "dockerhub", dockerhub("4.0.9"), http.StatusTooManyRequests)
	expect("harbor, 3 pushes with 2 left in all", "harbor", harborPushes(3), http.StatusTooManyRequests)
	expect("harbor, 2 pushes", "harbor", harborPushes(2), http.StatusAccepted)
	expect("custom, past the total", "custom", []byte(`{"push_data":{"tag":"4.1.0"},"repository":{"repo_url":"registry.cn-hangzhou.aliyuncs.com","namespace":"imagehook-demo","name":"website"}}`), http.StatusTooManyRequests)
	h.git.Stall.Store(false)
	for _, id := range accepted {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+id, nil)
			_, ev := h.do(req)
			if st := fmt.Sprint(ev["status"]); st == "succeeded" || st == "failed" || st == "ignored" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s did not finish: %v", id, ev)
			}
		}
	}
	h.stop()
	j, err := journal.OpenSQLite(filepath.Join(h.cfg.DataDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	recent, err := j.Recent(t.Context(), 100)
	if err != nil || len(recent) != len(accepted) || len(accepted) != 6 {
		t.Errorf("journal holds %d events (%v), accepted %d, want 6", len(recent), err, len(accepted))
	}
}

// TestBacklogDrainsInBoundedMemory (trust row 5): a backlog of 30,000 events for one target,
// journaled while imagehook was down, drains after a restart in batches of updater.MaxBatch with
// the heap under 100 MB throughout (the run took RSS to 202 MB reading 32,700 events into
// one batch); the push journaled last is what git holds. The heap is sampled every 20 ms.
func TestBacklogDrainsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("30,000 events")
	}
	const backlog = 30_000
	h := newHarness(t)
	h.stop()
	j, err := journal.OpenSQLite(filepath.Join(h.cfg.DataDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	target := h.cfg.Hooks[1].Targets[0].Event() // dockerhub's
	// The inserts run side by side, so journal order, which decides the winner, is not i's: the
	// event of the highest Seq is the one git must hold at the end.
	var mu sync.Mutex
	var newest *event.Event
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for range 32 { // the journal's writer batches concurrent inserts into one transaction
		wg.Go(func() {
			for i := range next {
				now := time.Now().UTC()
				ev := &event.Event{ID: event.NewID(now), Hook: "dockerhub", ReceivedAt: now, Status: event.Queued, Targets: []event.Target{target},
					Push: event.Push{Image: fmt.Sprintf("registry.cn-hangzhou.aliyuncs.com/imagehook-demo/website:7.0.%d", i), Source: "dockerhub", Pusher: "ci"}}
				if err := j.Insert(t.Context(), ev); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
				mu.Lock()
				if newest == nil || ev.Seq > newest.Seq {
					newest = ev
				}
				mu.Unlock()
			}
		})
	}
	for i := range backlog {
		next <- i
	}
	close(next)
	wg.Wait()
	j.Close()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // VmHWM starts again (Linux)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	h.start()
	last := newest.ID
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.addr+"/events/"+last, nil)
		if _, ev := h.do(req); ev["status"] == "succeeded" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the backlog did not drain: the last event is %v", ev)
		}
	}
	close(stop)
	<-sampled
	t.Logf("peak heap while draining %d events: %d MB; peak RSS of the process %d MB", backlog, peak.Load()>>20, peakRSS()>>20)
	// The heap is what the cap bounds (RSS is the race detector's too under -race): with the
	// cap it peaks near 40 MB, reading the backlog into one batch near 95 MB, so 64 MB tells them
	// apart and keeps the RSS under 100 MB without -race.
	if peak.Load() > 64<<20 {
		t.Errorf("peak heap while draining %d events: %d MB, want under 64", backlog, peak.Load()>>20)
	}
	if img := h.manifestImage(); img != newest.Push.Image {
		t.Errorf("git holds %s, want the push journaled last, %s", img, newest.Push.Image)
	}
}

// peakRSS is the process's peak resident set since it was last reset, in bytes (Linux; 0 elsewhere).
func peakRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
