package promote

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/journal"
)

// noJournal is a journal for a controller without pipelines: nothing is ever read from it.
type noJournal struct{}

func (noJournal) Get(context.Context, string) (*event.Event, error) { return nil, event.ErrNotFound }
func (noJournal) Current(context.Context, string) (journal.Applied, error) {
	return journal.Applied{}, nil
}
func (noJournal) Promotions() journal.Promotions { return nil }

// TestPageLanguage: the pipeline page picks its language by the rule the status page uses
// (package lang): ?lang= when imagehook writes it, else the first tag of Accept-Language, else
// English.
func TestPageLanguage(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	holds, err := NewHolds(&config.Config{}, noJournal{}, log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := New(&config.Config{}, holds, nil, log, Options{})
	page := api{c}.handlePage(func(*http.Request) bool { return true })
	const en, zh = "No pipelines configured.", "未配置流水线。"
	for _, tt := range []struct {
		name, query, accept, want string
	}{
		{name: "switch zh", query: "?lang=zh", accept: "en-US", want: zh},
		{name: "switch en", query: "?lang=en", accept: "zh-CN", want: en},
		{name: "unknown switch, browser zh", query: "?lang=fr", accept: "zh-CN,zh;q=0.9", want: zh},
		{name: "browser zh", accept: "zh-TW", want: zh},
		{name: "browser en first", accept: "en-US,zh;q=0.5", want: en},
		{name: "any tag first, then zh", accept: "*, zh", want: zh},
		{name: "space before zh", accept: " zh-CN", want: zh},
		{name: "browser other", accept: "de-DE", want: en},
		{name: "nothing", want: en},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/ui/pipelines"+tt.query, nil)
			if tt.accept != "" {
				r.Header.Set("Accept-Language", tt.accept)
			}
			w := httptest.NewRecorder()
			page(w, r)
			if body := w.Body.String(); w.Code != http.StatusOK || !strings.Contains(body, tt.want) {
				t.Errorf("got %d\n%s\nwant a page saying %q", w.Code, body, tt.want)
			}
		})
	}
}
