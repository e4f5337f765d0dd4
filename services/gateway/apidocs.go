package gateway

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"mime"
	"net/http"
	"path"
	"time"
)

// The API reference page: Swagger UI rendering /openapi.json, from assets embedded in the binary (apidocs/README.md
// says where they come from), so that it works offline and loads nothing from anywhere else.

const (
	apiDocsRoute      = "/docs"
	apiDocsAssetRoute = "/docs/{asset}"
)

//go:embed apidocs/index.html apidocs/init.js apidocs/swagger-ui-bundle.js apidocs/swagger-ui.css apidocs/LICENSE apidocs/NOTICE apidocs/swagger-ui-bundle.js.LICENSE.txt
var apiDocsFiles embed.FS

// apiDocsCSP lets the page run only this server's scripts and styles and talk only to this server (the document,
// and "Try it out"). The style sheet's icons are data: images, which come from no origin.
const apiDocsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

// apiDocsETags are the assets' validators: the binary is their only version.
var apiDocsETags = func() map[string]string {
	tags := map[string]string{}
	entries, _ := apiDocsFiles.ReadDir("apidocs")
	for _, e := range entries {
		body, _ := apiDocsFiles.ReadFile("apidocs/" + e.Name())
		sum := sha256.Sum256(body)
		tags[e.Name()] = `"` + hex.EncodeToString(sum[:8]) + `"`
	}
	return tags
}()

// apiDocs serves GET /docs, the page itself.
func (g *Gateway) apiDocs(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), apiDocsRoute)
	serveAPIDocsFile(w, r, "index.html")
}

// apiDocsAsset serves GET /docs/{asset}, the page's scripts, style sheet and licenses.
func (g *Gateway) apiDocsAsset(w http.ResponseWriter, r *http.Request) {
	setRoute(r.Context(), apiDocsAssetRoute)
	serveAPIDocsFile(w, r, r.PathValue("asset"))
}

func serveAPIDocsFile(w http.ResponseWriter, r *http.Request, name string) {
	etag, ok := apiDocsETags[name]
	if !ok {
		notFound(w, r)
		return
	}
	body, err := apiDocsFiles.ReadFile("apidocs/" + name)
	if err != nil {
		notFound(w, r)
		return
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "text/plain; charset=utf-8" // LICENSE, NOTICE
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", apiDocsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache") // revalidated by ETag: the assets change with the binary
	h.Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}
