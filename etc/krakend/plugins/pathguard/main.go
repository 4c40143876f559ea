// pathguard: a KrakenD CE HTTP server plugin (plugin/http-server) that answers a request whose
// path holds a control character (U+0000-U+001F or U+007F) with 400 and the services' error
// body, before gin routes it.
//
// Why: gin decodes the path, so lura's own check of the path parameters (router/gin/engine.go,
// paramChecker) sees "\x00" or "\r\n" where the client sent %00 or %0D%0A, finds no '%' left and
// lets it pass; the proxy then builds the backend URL with it, Go's net/url refuses the URL
// ("invalid control character in URL"), and the client got KrakenD's empty 500. No service is
// reached either way. KrakenD CE has no option that covers it; a Lua check per endpoint did, at
// +70% of the gateway's CPU per request.
//
// Cost: one byte scan of the decoded path (and of the raw path, which Go keeps only when the
// client's encoding differs from its own); every other request goes to the next handler as it
// came, with nothing buffered, wrapped or allocated (22-45 ns a request: main_test.go).
//
// The refusal carries the request's id (`request_id`) when it has one: the X-Request-Id that the
// plugin gatewayerrors, loaded in front of this one, gives every request.
//
// Built by bin/lib.sh (ensure_krakend_plugins) inside a copy of the krakend-ce module that the
// binary was built from, with the same Go and the same module versions: a Go plugin loads only
// into such a binary. Both gateways load it: etc/krakend/templates/service.tmpl, "plugins" (the
// folder) and "path_guard" (this handler, by the name it registers).
package main

import (
	"context"
	"encoding/json"
	"net/http"
)

// HandlerRegisterer is the symbol KrakenD looks up in the plugin.
var HandlerRegisterer = registerer("pathguard")

type registerer string

func (r registerer) RegisterHandlers(register func(
	name string,
	handler func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error),
)) {
	register(string(r), func(_ context.Context, _ map[string]interface{}, next http.Handler) (http.Handler, error) {
		return guard(next), nil
	})
}

// The services' error shape (app/common/errors.py): a sentence, a stable code, the request id.
type refusal struct {
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
}

const badPath = "the path has a control character in it (a NUL, a tab, a line break, DEL...), " +
	"which no route takes"

func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasControlCharacter(r.URL.Path) || hasControlCharacter(r.URL.RawPath) {
			// Marshalled, not pasted in: without gatewayerrors the id would be the client's.
			body, _ := json.Marshal(refusal{badPath, "bad_path", r.Header.Get("X-Request-Id")})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write(body)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hasControlCharacter: a byte under 0x20 or 0x7F. In UTF-8 every byte of a multi-byte character
// is 0x80 or over, so this finds exactly the characters U+0000-U+001F and U+007F, which Go's
// net/url refuses in a URL (stringContainsCTLByte).
func hasControlCharacter(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func main() {}
