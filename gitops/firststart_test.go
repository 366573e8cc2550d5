package gitops

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestDuringFirstFill: overlapping first fills lower the collector's target once and restore the
// one they found when the last ends (a done called twice counts once).
func TestDuringFirstFill(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	a := duringFirstFill()
	b := duringFirstFill()
	if got := debug.SetGCPercent(firstFillGCPercent); got != firstFillGCPercent {
		t.Fatalf("during two fills: GOGC %d, want %d", got, firstFillGCPercent)
	}
	a()
	a()
	if got := debug.SetGCPercent(firstFillGCPercent); got != firstFillGCPercent {
		t.Fatalf("one fill still running: GOGC %d, want %d", got, firstFillGCPercent)
	}
	b()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("after both: GOGC %d, want 100 restored", got)
	}
}

// TestProgressLog: the server's progress messages, split anywhere and separated by carriage
// returns, become at most one log line an interval, and the last one is logged at the end.
func TestProgressLog(t *testing.T) {
	var out bytes.Buffer
	p := &progressLog{log: slog.New(slog.NewTextHandler(&out, nil)), interval: time.Hour}
	for _, chunk := range []string{"Counting obj", "ects:  10% (1/10)\rCounting objects: 100% (10/10), done.\n", "Compressing objects: 50% (5/10)\r"} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	p.flush()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "Counting objects:  10% (1/10)") || !strings.Contains(lines[1], "Compressing objects: 50% (5/10)") {
		t.Errorf("logged:\n%s\nwant the first message, then the last one", out.String())
	}
}
