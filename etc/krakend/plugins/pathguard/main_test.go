package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func answer(r *http.Request) (*httptest.ResponseRecorder, bool) {
	reached := false
	rec := httptest.NewRecorder()
	guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })).ServeHTTP(rec, r)
	return rec, reached
}

func TestAControlCharacterInThePathIsA400BadPath(t *testing.T) {
	for _, path := range []string{"/sections/%00", "/sections/1%0D%0AX-Injected:%201", "/sections/%7F", "/sections/%09", "/sections/1%00"} {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("X-Request-Id", "0f8b1c9e-4c1a-4d3e-9a57-2f1f6b0c9d21")
		rec, reached := answer(r)

		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || reached || rec.Code != 400 {
			t.Fatalf("%s: %d %q (reached the router: %v)", path, rec.Code, rec.Body, reached)
		}
		if rec.Header().Get("Content-Type") != "application/json" || body["code"] != "bad_path" ||
			body["detail"] != badPath || body["request_id"] != "0f8b1c9e-4c1a-4d3e-9a57-2f1f6b0c9d21" || len(body) != 3 {
			t.Fatalf("%s: %v %q", path, rec.Header(), rec.Body)
		}
	}
}

func TestWithoutARequestIDTheBodyHasNone(t *testing.T) {
	rec, _ := answer(httptest.NewRequest("GET", "/sections/%00", nil))
	if rec.Body.String() != `{"detail":"`+badPath+`","code":"bad_path"}` {
		t.Fatalf("%q", rec.Body)
	}
	r := httptest.NewRequest("GET", "/sections/%00", nil)
	r.Header.Set("X-Request-Id", `a", "code": "forged`)
	rec, _ = answer(r)
	var body map[string]string
	if json.Unmarshal(rec.Body.Bytes(), &body); body["code"] != "bad_path" {
		t.Fatalf("%q", rec.Body)
	}
}

func TestOtherPathsPassUntouched(t *testing.T) {
	for _, path := range []string{"/sections/1", "/sections/%31", "/sections/%C3%A9", "/nothing-here"} {
		rec, reached := answer(httptest.NewRequest("GET", path, nil))
		if !reached || rec.Code != 200 || rec.Body.Len() != 0 {
			t.Fatalf("%s: %d %q", path, rec.Code, rec.Body)
		}
	}
}

func TestKrakenDRegistersItByName(t *testing.T) {
	var names []string
	HandlerRegisterer.RegisterHandlers(func(name string, f func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error)) {
		names = append(names, name)
		if _, err := f(context.Background(), nil, http.NotFoundHandler()); err != nil {
			t.Fatal(err)
		}
	})
	if len(names) != 1 || names[0] != "pathguard" {
		t.Fatal(names)
	}
}

// The cost on every request that passes (nearly all of them).
func BenchmarkAPathThatPasses(b *testing.B) {
	h := guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest("GET", "/enroll_api/users/9/enrollments?term=2026-fall", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, r)
	}
}
