package web

import "testing"

func TestLocalPathStaysOnSite(t *testing.T) {
	cases := map[string]string{
		"/account":                  "/account",
		"/help?x=1":                 "/help?x=1",
		"/a/../b":                   "/b",
		"/caf%C3%A9?q=a":            "/caf%C3%A9?q=a",
		"":                          "/",
		"account":                   "/",
		"//evil.example/":           "/",
		"/\\evil.example":           "/",
		"/./\\evil.example":         "/",
		"/%5Cevil.example":          "/",
		"https://evil.example/":     "/",
		"/\t/evil.example":          "/",
		"javascript:alert(1)":       "/",
		"/.//evil.example":          "/evil.example", // a path on this site, not a host
		"/..//evil.example":         "/evil.example",
		"/a/b/..//..//evil.example": "/evil.example",
		"/%2F/evil.example":         "/%2F/evil.example",
		"/kiosk/%2e%2e/people":      "/people", // as a browser reads it
		"/kiosk/%2E./%2e/people":    "/people",
		"/a%2eb":                    "/a.b",
	}
	for in, want := range cases {
		if got := LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}
