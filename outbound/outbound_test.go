package outbound

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRedirects: a redirect to another host is refused before anything is sent there, and a
// redirect on the same host is followed without a Referer (the first URL, with its token).
func TestRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	var referer atomic.Value
	referer.Store("")
	robot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/final":
			referer.Store(r.Header.Get("Referer"))
		}
	}))
	defer robot.Close()
	c := Client(5*time.Second, nil)

	_, err := c.Post(robot.URL+"/away?access_token=s3cret", "application/json", strings.NewReader(`{"msg":"x"}`))
	if !errors.Is(err, ErrRedirectToOtherHost) || elsewhere.Load() != 0 {
		t.Errorf("redirect to another host: err %v, %d requests reached it", err, elsewhere.Load())
	}
	resp, err := c.Post(robot.URL+"/here?access_token=s3cret", "application/json", strings.NewReader(`{"msg":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := referer.Load().(string); r != "" {
		t.Errorf("same-host redirect sent Referer %q", r)
	}
	if _, err := c.Get(robot.URL + "/loop"); err == nil || !strings.Contains(err.Error(), "stopped after 5 redirects") {
		t.Errorf("redirect loop: %v", err)
	}
}
