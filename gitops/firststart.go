package gitops

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// firstFillGCPercent is the garbage collector's target while a cache is filled for the first time
// (GOGC's default is 100). go-git's pack index build holds every object's metadata until the end
// (~75 MB live for 200,000 files), and with GOGC 100 the heap grows to twice that before a
// collection: 150 MB of heap for 75 MB of data. A first start is once per cache; collecting ten
// times as often then costs some CPU there and keeps a big first start in a small pod. At 25 the
// binary still peaked at 152–156 MB at 200,000 files (TestMonorepo); at 10 it peaks at 138 MB, and
// the first event takes about a third longer, once.
const firstFillGCPercent = 10

var firstFills struct {
	mu    sync.Mutex
	n     int
	saved int
}

// duringFirstFill lowers the collector's target until the returned func is called; overlapping
// first fills (several repositories at start) restore it once the last one ends.
func duringFirstFill() (done func()) {
	firstFills.mu.Lock()
	defer firstFills.mu.Unlock()
	if firstFills.n == 0 {
		firstFills.saved = debug.SetGCPercent(firstFillGCPercent)
	}
	firstFills.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			firstFills.mu.Lock()
			defer firstFills.mu.Unlock()
			if firstFills.n--; firstFills.n == 0 {
				debug.SetGCPercent(firstFills.saved)
			}
		})
	}
}

// progressLog turns the server's progress messages during a fetch ("Counting objects: 40% (…)",
// carriage returns between updates) into a log line at most every interval, and the last one at
// the end, so that a long first clone says how far it is.
type progressLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	buf      []byte
	last     string
	logged   time.Time
}

func (p *progressLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexAny(p.buf, "\r\n")
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
		if line == "" {
			continue
		}
		p.last = line
		if time.Since(p.logged) >= p.interval {
			p.log.Info("first fetch", "server", line)
			p.logged = time.Now()
		}
	}
	return len(b), nil
}

// flush logs the last message heard when it was not logged yet.
func (p *progressLog) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != "" && time.Since(p.logged) > 0 {
		p.log.Info("first fetch", "server", p.last)
	}
}
