package httpx

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIPBelievesOnlyTrustedProxies(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		remote, xff string
		trusted     []netip.Prefix
		want        string
	}{
		{"203.0.113.7:5000", "", nil, "203.0.113.7"},
		{"203.0.113.7:5000", "1.2.3.4", nil, "203.0.113.7"},                // spoofed header, no proxy configured
		{"203.0.113.7:5000", "1.2.3.4", proxy, "203.0.113.7"},              // header from a client that is not a proxy
		{"10.0.0.2:5000", "198.51.100.9", proxy, "198.51.100.9"},           // through the proxy
		{"10.0.0.2:5000", "1.2.3.4, 198.51.100.9", proxy, "198.51.100.9"},  // client forged a hop to the left
		{"10.0.0.2:5000", "198.51.100.9, 10.0.0.3", proxy, "198.51.100.9"}, // two proxies
		{"10.0.0.2:5000", "garbage", proxy, "10.0.0.2"},                    // nothing usable
		{"[::ffff:203.0.113.7]:5000", "", nil, "203.0.113.7"},              // IPv4-mapped
		{"[2001:db8::1]:5000", "", nil, "2001:db8::1"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientIP(r, tc.trusted); got != tc.want {
			t.Errorf("remote %s, X-Forwarded-For %q: got %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}
