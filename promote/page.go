package promote

import (
	"html/template"
	"net/http"
	"time"

	"github.com/imagehook/imagehook/lang"
)

// pageWords are the pipeline page's words by language.
var pageWords = lang.Words{
	lang.English: {"title": "Pipelines", "runs": "Runs in git", "ready": "Ready", "candidate": "Candidate", "waits": "Waits on",
		"entered": "entered by pushes", "from": "after", "none": "No pipelines configured.", "held": "held", "open": "open",
		"shut": "shut", "gates": "Gates", "current": "runs the candidate"},
	lang.Chinese: {"title": "晋级流水线", "runs": "git 中的镜像", "ready": "就绪时间", "candidate": "候选", "waits": "等待",
		"entered": "由推送进入", "from": "上一环境", "none": "未配置流水线。", "held": "已挂起", "open": "已满足",
		"shut": "未满足", "gates": "关卡", "current": "已是候选版本"},
}

var pipelinePage = template.Must(template.New("pipelines").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
}).Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.T.title}} · imagehook</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1f2328}h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}
.stages{display:flex;gap:.75rem;flex-wrap:wrap;align-items:stretch}.stage{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .8rem;min-width:16rem;flex:1}
.stage h3{margin:0 0 .4rem;font-size:1rem}.held{border-color:#cf222e;background:#ffebe9}.held .state{color:#cf222e;font-weight:600}
code{font-size:12px;word-break:break-all}.note{color:#6e7781}.ok{color:#1a7f37}.shut{color:#9a6700}dt{color:#6e7781;margin-top:.3rem}dd{margin:0}
nav{float:right}nav a{margin-left:.5rem}
</style></head><body>
<nav><a href="?lang=en" hreflang="en">English</a><a href="?lang=zh" hreflang="zh">中文</a></nav>
<h1><a href="/?lang={{.Lang}}">imagehook</a> · {{.T.title}}</h1>
{{$T := .T}}{{$lang := .Lang}}{{range .Pipelines}}<h2>{{.Name}}</h2><div class="stages">
{{range .Stages}}<div class="stage{{if .Held}} held{{end}}" id="stage-{{.Name}}"><h3>{{.Name}}</h3>
<div class="note">{{if .After}}{{$T.from}} {{.After}}{{else}}{{$T.entered}}{{end}}</div>
<dl><dt>{{$T.runs}}</dt><dd><code>{{if .Image}}{{.Image}}{{else}}—{{end}}</code></dd>
<dt>{{$T.ready}}</dt><dd>{{when .ReadyAt}}</dd>
{{with .Candidate}}<dt>{{$T.candidate}}</dt><dd><code>{{.Image}}{{if .Digest}}@{{.Digest}}{{end}}</code></dd>{{end}}
{{if .Gates}}<dt>{{$T.gates}}</dt><dd>{{range .Gates}}<div class="{{if .Open}}ok{{else}}shut{{end}}">{{.Gate}}: {{if .Open}}{{$T.open}}{{else}}{{$T.shut}}{{end}}{{if .Detail}} — {{.Detail}}{{end}}</div>{{end}}</dd>{{end}}
{{if .State}}<dt>{{$T.waits}}</dt><dd class="state">{{if and .Held (ne $lang "en")}}{{$T.held}} — {{end}}{{.Detail}}</dd>{{end}}
</dl></div>
{{end}}</div>
{{else}}<p>{{$T.none}}</p>{{end}}
</body></html>
`))

// handlePage serves the pipeline view: stages left to right, what each runs, its candidate and
// the gate it waits on, holds in red. No script; it refreshes itself.
func (a api) handlePage(admin func(*http.Request) bool) http.HandlerFunc {
	c := a.c
	return func(w http.ResponseWriter, r *http.Request) {
		if !admin(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="imagehook"`)
			writeError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		l := pageLanguage(r)
		vs, err := c.Views(r.Context())
		if err != nil {
			c.log.Warn("pipelines not read", "err", err)
			writeError(w, http.StatusServiceUnavailable, "pipelines not read; try again")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Vary", "Accept-Language")
		_ = pipelinePage.Execute(w, map[string]any{"Lang": l, "T": pageWords.In(l), "Pipelines": vs})
	}
}

// pageLanguage picks the page's language as the status page does: ?lang= (the switch), else the
// browser's first preference.
func pageLanguage(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); lang.Known(l) {
		return l
	}
	return lang.Preferred(r.Header.Get("Accept-Language"))
}
