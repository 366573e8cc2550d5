package manifests

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imagehook/imagehook/imageref"
)

// TestFleetMarkerForms: each form of Fleet's $imagescan marker is rewritten to exactly what Fleet's
// imagescan writes there — whole: repository:tag; :tag: the tag; :name: the repository; :digest:
// repository:tag@digest — and a $imagescan :digest marker holding a bare digest keeps getting the
// digest alone (Flux's form). Markers lists them all with their key, id, form and line.
func TestFleetMarkerForms(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	doc := `a: r.example.com/team/web:1.0.0 # {"$imagescan": "web"}
b: "1.0.0" # {"$imagescan": "web:tag"}
c: r.example.com/team/web # {"$imagescan": "web:name"}
d: r.example.com/team/web:1.0.0@` + d1 + ` # {"$imagescan": "web:digest"}
e: ` + d1 + ` # {"$imagescan": "web:digest"}
f: r.example.com/team/web:1.0.0 # {"$imagescan": "other"}
`
	want := `a: r.example.com/team/web:1.1.0 # {"$imagescan": "web"}
b: "1.1.0" # {"$imagescan": "web:tag"}
c: r.example.com/team/web # {"$imagescan": "web:name"}
d: r.example.com/team/web:1.1.0@` + d2 + ` # {"$imagescan": "web:digest"}
e: ` + d2 + ` # {"$imagescan": "web:digest"}
f: r.example.com/team/web:1.0.0 # {"$imagescan": "other"}
`
	fsys := fstest.MapFS{"x/values.yaml": {Data: []byte(doc)}}
	pushed, err := imageref.Parse("r.example.com/team/web:1.1.0@" + d2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := SetMarkers(fsys, "x", "web", pushed, Options{Pin: PinTag})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Files["x/values.yaml"]); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	marked, notRead, err := Markers(fsys, ".", "", Options{})
	if err != nil || len(notRead) > 0 {
		t.Fatal(err, notRead)
	}
	var got []string
	for _, m := range marked {
		got = append(got, m.File+":"+string(rune('0'+m.Line))+" "+m.Key+" "+m.ID+" "+m.Field)
	}
	if w := "x/values.yaml:1 $imagescan web |x/values.yaml:2 $imagescan web tag|x/values.yaml:3 $imagescan web name|x/values.yaml:4 $imagescan web digest|x/values.yaml:5 $imagescan web digest|x/values.yaml:6 $imagescan other "; strings.Join(got, "|") != w {
		t.Errorf("Markers:\n%s\nwant\n%s", strings.Join(got, "|"), w)
	}
}
