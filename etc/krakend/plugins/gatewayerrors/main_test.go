package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/luraproject/lura/v2/config"
	"github.com/luraproject/lura/v2/logging"
	"github.com/luraproject/lura/v2/proxy"
	luragin "github.com/luraproject/lura/v2/router/gin"
	"github.com/luraproject/lura/v2/transport/http/server"
)

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// serve runs one request through wrap(handler) and returns the answer and the request id the
// handler saw.
func serve(t *testing.T, handler http.HandlerFunc, timeout time.Duration, r *http.Request) (*http.Response, string) {
	t.Helper()
	var seen string
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get(RequestIDHeader)
		handler(w, r)
	})
	rec := httptest.NewRecorder()
	wrap(inner, timeout).ServeHTTP(rec, r)
	return rec.Result(), seen
}

func read(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errorBody checks that an answer is the services' error shape, exactly, and returns it.
func errorBody(t *testing.T, res *http.Response, id string) body {
	t.Helper()
	text := read(t, res)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, body %q", ct, text)
	}
	if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(text)) {
		t.Fatalf("Content-Length %q for %d bytes", cl, len(text))
	}
	var fields map[string]interface{}
	if err := json.Unmarshal([]byte(text), &fields); err != nil {
		t.Fatalf("not JSON: %q", text)
	}
	if len(fields) != 3 {
		t.Fatalf("fields other than detail, code, request_id: %q", text)
	}
	var b body
	json.Unmarshal([]byte(text), &b)
	if b.Detail == "" || b.Code == "" || b.RequestID != id {
		t.Fatalf("body %q, request id %q", text, id)
	}
	return b
}

func TestEveryRequestGetsANewRequestIDReplacingTheClients(t *testing.T) {
	ok := func(w http.ResponseWriter, _ *http.Request) {}
	r := httptest.NewRequest("GET", "/enroll_api/sections", nil)
	r.Header.Set(RequestIDHeader, "chosen-by-the-client")
	_, first := serve(t, ok, 0, r)
	_, second := serve(t, ok, 0, httptest.NewRequest("GET", "/enroll_api/sections", nil))

	if !uuid4.MatchString(first) || !uuid4.MatchString(second) || first == second {
		t.Fatalf("request ids %q, %q", first, second)
	}
}

func TestAnAnswerUnder400PassesAsItIsWritten(t *testing.T) {
	var flushed bool
	res, _ := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("X-Request-Id", "the-services")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "a,b\n")
		w.(http.Flusher).Flush()
		flushed = true
		w.Write([]byte("1,2\n"))
	}, 0, httptest.NewRequest("POST", "/enroll_api/completed-courses", nil))

	if res.StatusCode != 201 || read(t, res) != "a,b\n1,2\n" || !flushed {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
	if res.Header.Get("Content-Type") != "text/csv" || res.Header.Get("X-Request-Id") != "the-services" {
		t.Fatalf("headers changed: %v", res.Header)
	}
}

func TestAWriteWithoutAStatusIsA200(t *testing.T) {
	res, _ := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("plain"))
	}, 0, httptest.NewRequest("GET", "/x", nil))

	if res.StatusCode != 200 || read(t, res) != "plain" {
		t.Fatal(res.StatusCode)
	}
}

func TestAServicesJSONErrorPassesUntouched(t *testing.T) {
	const answer = `{"detail":"section 3 is full","code":"waitlist_full","request_id":"abc"}`
	for _, contentType := range []string{"application/json", "application/json; charset=utf-8"} {
		res, _ := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(answer))
		}, 0, httptest.NewRequest("POST", "/enroll_api/users/9/enrollments", nil))

		if res.StatusCode != 409 || read(t, res) != answer || res.Header.Get("Retry-After") != "30" {
			t.Fatalf("%s: %d %v", contentType, res.StatusCode, res.Header)
		}
	}
}

func TestTheGatewaysOwnErrorsGetTheServicesShape(t *testing.T) {
	cases := []struct {
		status      int
		token       bool
		contentType string
		written     string
		wantStatus  int
		code        string
		says        string
	}{
		{400, true, "", "error: encoded url params", 400, "bad_request", "percent-encoded"},
		{401, false, "", "", 401, "unauthenticated", "bearer token"},
		{401, true, "", "", 401, "invalid_token", "invalid or expired"},
		{403, true, "", "", 403, "forbidden", "role"},
		{404, true, "text/plain", "404 page not found", 404, "no_route", "no route"},
		{405, true, "text/plain", "405 method not allowed", 405, "method_not_allowed", "take DELETE"},
		{413, true, "", "", 413, "body_too_large", "size limit"},
		{429, true, "", "", 429, "too_many_requests", "try again"},
		{500, true, "", "", 500, "backend_failed", mayBeApplied},
		{500, true, "text/plain", "Internal Server Error", 500, "backend_failed", mayBeApplied},
		{502, true, "", "", 502, "backend_failed", mayBeApplied},
		{503, true, "", "", 503, "unavailable", "try again"},
		{504, true, "", "", 504, "backend_timeout", mayBeApplied},
		{418, true, "", "", 418, "gateway_error", "teapot"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("DELETE", "/enroll_api/sections/1", nil)
		if c.token {
			r.Header.Set("Authorization", "Bearer x.y.z")
		}
		res, id := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Krakend-Completed", "false")
			if c.contentType != "" {
				w.Header().Set("Content-Type", c.contentType)
				w.Header().Set("Content-Length", strconv.Itoa(len(c.written)))
			}
			w.WriteHeader(c.status)
			w.Write([]byte(c.written))
		}, 35*time.Second, r)

		got := errorBody(t, res, id)
		if res.StatusCode != c.wantStatus || got.Code != c.code || !strings.Contains(got.Detail, c.says) {
			t.Errorf("%d: got %d %+v", c.status, res.StatusCode, got)
		}
		if res.Header.Get("X-Krakend-Completed") != "false" || res.Header.Get("X-Request-Id") != "" {
			t.Errorf("%d: headers %v", c.status, res.Header)
		}
	}
}

func TestA500AfterTheTimeoutIsA504(t *testing.T) {
	slow := func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(30 * time.Millisecond)
		w.WriteHeader(500)
	}
	res, id := serve(t, slow, 20*time.Millisecond, httptest.NewRequest("POST", "/x", nil))
	got := errorBody(t, res, id)
	if res.StatusCode != 504 || got.Code != "backend_timeout" || !strings.Contains(got.Detail, "20ms") {
		t.Fatalf("%d %+v", res.StatusCode, got)
	}

	res, id = serve(t, slow, 0, httptest.NewRequest("POST", "/x", nil))
	if got := errorBody(t, res, id); res.StatusCode != 500 || got.Code != "backend_failed" {
		t.Fatalf("without a timeout: %d %+v", res.StatusCode, got)
	}
}

func TestConfig(t *testing.T) {
	for raw, want := range map[string]time.Duration{"null": 0, `{}`: 0, `{"timeout": "35s"}`: 35 * time.Second} {
		var v interface{}
		json.Unmarshal([]byte(raw), &v)
		if got, err := configuredTimeout(v); err != nil || got != want {
			t.Errorf("%s: %v %v", raw, got, err)
		}
	}
	for _, raw := range []string{`"35s"`, `{"timeout": 35}`, `{"timeout": "soon"}`, `{"timeout": "-1s"}`} {
		var v interface{}
		json.Unmarshal([]byte(raw), &v)
		if _, err := configuredTimeout(v); err == nil {
			t.Errorf("%s: no error", raw)
		}
	}
}

func TestKrakenDRegistersItByName(t *testing.T) {
	var names []string
	var factory func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error)
	HandlerRegisterer.RegisterHandlers(func(name string, f func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error)) {
		names = append(names, name)
		factory = f
	})
	extra := map[string]interface{}{"name": []interface{}{"gatewayerrors"}, "gatewayerrors": map[string]interface{}{"timeout": "35s"}}
	if _, err := factory(context.Background(), extra, http.NotFoundHandler()); err != nil || len(names) != 1 || names[0] != "gatewayerrors" {
		t.Fatal(names, err)
	}
	extra["gatewayerrors"] = map[string]interface{}{"timeout": "never"}
	if _, err := factory(context.Background(), extra, http.NotFoundHandler()); err == nil {
		t.Fatal("a bad timeout was taken")
	}
}

// The real thing: KrakenD's router (gin, configured as lura configures it) and lura's endpoint
// handler with output_encoding no-op, with the plugin in front as KrakenD puts it.
func engine(t *testing.T, timeout time.Duration, backend proxy.Proxy) http.Handler {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash, e.RedirectFixedPath = false, false
	endpoint := &config.EndpointConfig{
		Endpoint:       "/enroll_api/sections/:id",
		Method:         "GET",
		Timeout:        timeout,
		OutputEncoding: "no-op",
		HeadersToPass:  []string{"Content-Type", RequestIDHeader}, // input_headers
	}
	handler := luragin.CustomErrorEndpointHandler(logging.NoOp, server.DefaultToHTTPError)(endpoint, backend)
	e.GET(endpoint.Endpoint, handler)
	e.GET("/enroll_api/refused", func(c *gin.Context) { c.AbortWithStatus(http.StatusUnauthorized) })
	return wrap(e, timeout)
}

func get(h http.Handler, method, path string) *http.Response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestThroughGinAndLura(t *testing.T) {
	var sentID string
	answer := func(status int, contentType, text string) proxy.Proxy {
		return func(_ context.Context, r *proxy.Request) (*proxy.Response, error) {
			sentID = r.Headers[RequestIDHeader][0]
			return &proxy.Response{
				IsComplete: true,
				Io:         strings.NewReader(text),
				Metadata: proxy.Metadata{
					StatusCode: status,
					Headers:    map[string][]string{"Content-Type": {contentType}, "X-Request-Id": {sentID}},
				},
			}, nil
		}
	}
	failing := func(context.Context, *proxy.Request) (*proxy.Response, error) {
		return nil, errors.New("dial tcp 127.0.0.1:5001: connect: connection refused")
	}
	hanging := func(ctx context.Context, _ *proxy.Request) (*proxy.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}

	// A service's answers and errors: as the service wrote them.
	ok := get(engine(t, time.Second, answer(200, "application/json", `{"id": 1}`)), "GET", "/enroll_api/sections/1")
	if ok.StatusCode != 200 || read(t, ok) != `{"id": 1}` || ok.Header.Get("X-Request-Id") != sentID {
		t.Fatalf("200: %d %v", ok.StatusCode, ok.Header)
	}
	const conflict = `{"detail": "no", "code": "section_exists", "request_id": "x"}`
	refused := get(engine(t, time.Second, answer(409, "application/json", conflict)), "GET", "/enroll_api/sections/1")
	if refused.StatusCode != 409 || read(t, refused) != conflict {
		t.Fatalf("409: %d", refused.StatusCode)
	}

	// The gateway's own.
	for _, c := range []struct {
		handler            http.Handler
		method, path, code string
		status             int
	}{
		{engine(t, time.Second, failing), "GET", "/enroll_api/sections/1", "backend_failed", 500},
		{engine(t, 20*time.Millisecond, hanging), "GET", "/enroll_api/sections/1", "backend_timeout", 504},
		{engine(t, time.Second, failing), "GET", "/enroll_api/nothing", "no_route", 404},
		{engine(t, time.Second, failing), "POST", "/enroll_api/sections/1", "method_not_allowed", 405},
		{engine(t, time.Second, failing), "GET", "/enroll_api/refused", "unauthenticated", 401},
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(c.method, c.path, nil)
		c.handler.ServeHTTP(rec, r)
		res := rec.Result()
		got := errorBody(t, res, r.Header.Get(RequestIDHeader))
		if res.StatusCode != c.status || got.Code != c.code {
			t.Errorf("%s %s: %d %+v", c.method, c.path, res.StatusCode, got)
		}
	}
}

// Benchmarks: the cost per request on the hot path (an answer under 400, streamed as written),
// against the same handler without the plugin, and the cost of one gateway error.
func benchmarkAnswer(b *testing.B, h http.Handler) {
	r := httptest.NewRequest("GET", "/enroll_api/sections", nil)
	w := &discard{header: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range w.header {
			delete(w.header, k)
		}
		h.ServeHTTP(w, r)
	}
}

type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

var section = []byte(strings.Repeat(`{"id": 1, "course": "CS 101", "capacity": 30}`, 20))

var answering = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	w.Write(section)
})

func BenchmarkAnswerWithoutThePlugin(b *testing.B) { benchmarkAnswer(b, answering) }
func BenchmarkAnswerThroughThePlugin(b *testing.B) { benchmarkAnswer(b, wrap(answering, time.Second)) }
func BenchmarkRequestID(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		newRequestID()
	}
}
func BenchmarkAGatewayError(b *testing.B) {
	benchmarkAnswer(b, wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}), time.Second))
}
