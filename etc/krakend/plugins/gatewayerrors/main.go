// gatewayerrors: a KrakenD CE HTTP server plugin (plugin/http-server) that gives every request a
// request id, and every error the gateway makes itself the services' error body (the one shape
// of app/common/errors.py): {"detail": sentence, "code": stable code, "request_id": id}.
//
// Why: KrakenD answers its own refusals and failures with an empty body (krakend-jose's 401 and
// 403, the body limit's 413, lura's 500 when a backend cannot be reached or times out) or with
// gin's "404 page not found" in text/plain, and a client cannot tell them apart from each other or
// learn what to do. A backend failure is the worst of them: the request may have been applied.
//
// Request id: every request gets a new X-Request-Id (a UUID v4) before anything else sees it;
// a client's own is replaced, so one id is one request in the logs. Each endpoint passes it on to
// its backend (input_headers), so a service logs and answers the same id, and the gateway's own
// error bodies carry it too: after a backend failure or a timeout the service's log line of that
// request, if it got that far, has the id the client was given. The gateway's own answers carry
// the id in the body only: an X-Request-Id header still means that a service answered.
//
// What is rewritten: an answer of 400 or more whose Content-Type is not application/json (so also
// uvicorn's own text 500, should a service fail outside its handlers). Every service error is
// JSON in the one shape and passes through untouched, status, headers (a Retry-After, say) and
// body; so do all answers under 400, and nothing of them is buffered. A rewritten answer keeps
// its status and headers (CORS, X-Krakend-Completed), gets the JSON body and its Content-Type and
// Content-Length, and whatever body KrakenD wrote after it is dropped. One status changes: lura
// answers a backend that did not answer within the endpoint's timeout with the same 500 as a
// backend that failed; a 500 that came after the timeout (config: "timeout", the service's, which
// every endpoint uses) is a 504.
//
// Cost: a request id (16 random bytes), a time stamp and the wrapped ResponseWriter per request,
// and a header lookup when the answer starts: 0.3-0.5 us and 3 allocations (144 B) a request in
// main_test.go's benchmarks on a 2-core machine (the id about 0.14 us of it), where the gateway
// spends about 490 us of CPU on a request; martian's header.Id, which it replaces, made a UUID per
// request too. A gateway error costs 1.2-2 us more (its JSON).
//
// Built by bin/lib.sh (ensure_krakend_plugins) like pathguard; both gateways load it, outermost
// (etc/krakend/templates/service.tmpl, "server_plugins"), so pathguard's 400 carries the id too.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HandlerRegisterer is the symbol KrakenD looks up in the plugin.
var HandlerRegisterer = registerer("gatewayerrors")

type registerer string

func (r registerer) RegisterHandlers(register func(
	name string,
	handler func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error),
)) {
	register(string(r), func(_ context.Context, extra map[string]interface{}, next http.Handler) (http.Handler, error) {
		timeout, err := configuredTimeout(extra[string(r)])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r, err)
		}
		return wrap(next, timeout), nil
	})
}

// configuredTimeout reads {"timeout": "35s"}: the endpoints' timeout, after which lura gives up
// on a backend. No config, or no timeout in it: every 500 is a failure, none a timeout.
func configuredTimeout(raw interface{}) (time.Duration, error) {
	if raw == nil {
		return 0, nil
	}
	config, ok := raw.(map[string]interface{})
	if !ok {
		return 0, errors.New("the config must be an object such as {\"timeout\": \"35s\"}")
	}
	value, ok := config["timeout"]
	if !ok {
		return 0, nil
	}
	text, ok := value.(string)
	if !ok {
		return 0, fmt.Errorf("timeout must be a duration such as \"35s\", not %v", value)
	}
	timeout, err := time.ParseDuration(text)
	if err != nil || timeout <= 0 {
		return 0, fmt.Errorf("timeout must be a positive duration such as \"35s\", not %q", text)
	}
	return timeout, nil
}

// RequestIDHeader is the header the services read and echo (app/common/observe.py).
const RequestIDHeader = "X-Request-Id"

func wrap(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		r.Header[RequestIDHeader] = []string{id}
		start := time.Now()
		next.ServeHTTP(&writer{ResponseWriter: w, request: r, id: id, start: start, timeout: timeout}, r)
	})
}

// newRequestID: a random UUID (version 4), the form the services and their logs already knew
// from KrakenD's martian header.Id, which made the ids before.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go 1.24+: it crashes the program rather than return an error)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

type state uint8

const (
	undecided state = iota // no status yet
	passing                // the answer goes out as it is written
	replaced               // the gateway's own error: its JSON is out, what follows is dropped
)

// writer is the ResponseWriter the rest of the gateway writes to.
type writer struct {
	http.ResponseWriter
	request *http.Request
	id      string
	start   time.Time
	timeout time.Duration
	state   state
}

func (w *writer) WriteHeader(status int) {
	switch {
	case w.state == replaced:
		return
	case w.state == passing, status < 200: // 1xx: informational, the final status is to come
		w.ResponseWriter.WriteHeader(status)
	case status < 400 || isJSON(w.Header()):
		w.state = passing
		w.ResponseWriter.WriteHeader(status)
	default:
		w.state = replaced
		w.replace(status)
	}
}

func (w *writer) Write(p []byte) (int, error) {
	if w.state == undecided {
		w.WriteHeader(http.StatusOK)
	}
	if w.state == replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *writer) WriteString(s string) (int, error) {
	if w.state == undecided {
		w.WriteHeader(http.StatusOK)
	}
	if w.state == replaced {
		return len(s), nil
	}
	if sw, ok := w.ResponseWriter.(interface{ WriteString(string) (int, error) }); ok {
		return sw.WriteString(s)
	}
	return w.ResponseWriter.Write([]byte(s))
}

// Flush, Hijack and CloseNotify: gin's own ResponseWriter asserts these on the writer it wraps.
func (w *writer) Flush() {
	if w.state == undecided {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok && w.state == passing {
		f.Flush()
	}
}

func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("gatewayerrors: the connection cannot be hijacked")
}

func (w *writer) CloseNotify() <-chan bool {
	if c, ok := w.ResponseWriter.(http.CloseNotifier); ok {
		return c.CloseNotify()
	}
	return nil
}

// Unwrap lets http.ResponseController reach the connection's own writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isJSON: a Content-Type of application/json (with or without parameters), as every service
// error has (app/common/errors.py, app/common/limits.py).
func isJSON(h http.Header) bool {
	v := h["Content-Type"]
	if len(v) == 0 {
		return false
	}
	const mediaType = "application/json"
	ct := v[0]
	return len(ct) >= len(mediaType) && strings.EqualFold(ct[:len(mediaType)], mediaType) &&
		(len(ct) == len(mediaType) || ct[len(mediaType)] == ';' || ct[len(mediaType)] == ' ')
}

// body is the services' error shape, in their order.
type body struct {
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id"`
}

func (w *writer) replace(status int) {
	status, code, detail := w.refusal(status)
	payload, _ := json.Marshal(body{detail, code, w.id}) // strings only: it cannot fail
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(payload))}
	delete(h, "Content-Encoding")
	w.ResponseWriter.WriteHeader(status)
	w.ResponseWriter.Write(payload)
}

// The sentence of a request that reached a backend and got no answer from it.
const mayBeApplied = "the request may or may not have been applied; retrying it with the same " +
	"Idempotency-Key is safe"

// refusal: the status, code and sentence of an error the gateway made, by its status (and, for
// a 401, whether a token was sent; for a 500, whether the endpoint's timeout had passed). The
// codes are the services' own where the meaning is the same: unauthenticated, invalid_token,
// forbidden, method_not_allowed, body_too_large, too_many_requests, unavailable.
func (w *writer) refusal(status int) (int, string, string) {
	switch status {
	case http.StatusBadRequest:
		return status, "bad_request", "the gateway cannot pass this request on: a path segment " +
			"holds a percent-encoded '%', '?' or '#', or the request is malformed"
	case http.StatusUnauthorized:
		if len(w.request.Header["Authorization"]) == 0 {
			return status, "unauthenticated", "this route needs a bearer token (Authorization: " +
				"Bearer <access token>): sign in first"
		}
		return status, "invalid_token", "the access token is invalid or expired: sign in again"
	case http.StatusForbidden:
		return status, "forbidden", "this route needs a role that the access token does not have"
	case http.StatusNotFound:
		return status, "no_route", "no route of this API has this path"
	case http.StatusMethodNotAllowed:
		detail := "this route does not take " + w.request.Method
		if allow := w.Header().Get("Allow"); allow != "" {
			detail += "; it takes " + allow
		}
		return status, "method_not_allowed", detail
	case http.StatusRequestEntityTooLarge:
		return status, "body_too_large", "the request body is over this route's size limit; " +
			"nothing was sent on"
	case http.StatusTooManyRequests:
		return status, "too_many_requests", "too many requests: wait a moment and try again"
	case http.StatusServiceUnavailable:
		return status, "unavailable", "the service is unavailable right now; try again shortly"
	case http.StatusGatewayTimeout:
		return status, "backend_timeout", "the service did not answer in time: " + mayBeApplied
	case http.StatusInternalServerError, http.StatusBadGateway:
		if w.timeout > 0 && time.Since(w.start) >= w.timeout {
			return http.StatusGatewayTimeout, "backend_timeout", fmt.Sprintf(
				"the service did not answer within %s: %s", w.timeout, mayBeApplied)
		}
		return status, "backend_failed", "the service failed or could not be reached before " +
			"it answered: " + mayBeApplied
	}
	return status, "gateway_error", "the gateway refused this request: " +
		strings.ToLower(http.StatusText(status))
}

func main() {}
