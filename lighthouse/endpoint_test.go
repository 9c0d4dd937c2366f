package lighthouse

import (
	"strings"
	"testing"
)

func TestNormalizeEndpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		err      string // a fragment of the error; "" for none
	}{
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{in: "http://127.0.0.1:8080/", want: "http://127.0.0.1:8080"},
		{in: "HTTP://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{in: "http://127.0.0.1:08080", want: "http://127.0.0.1:8080"},
		{in: "https://lighthouse.tencentcloudapi.com", want: "https://lighthouse.tencentcloudapi.com"},
		{in: "HTTPS://Lighthouse.TencentCloudAPI.com/", want: "https://lighthouse.tencentcloudapi.com"},
		{in: "https://lighthouse.tencentcloudapi.com:443", want: "https://lighthouse.tencentcloudapi.com"},
		{in: "http://localhost:80/", want: "http://localhost"},
		{in: "http://localhost:443", want: "http://localhost:443"},
		{in: "https://localhost:80", want: "https://localhost:80"},
		{in: "http://[::1]:8080/", want: "http://[::1]:8080"},
		{in: "http://[::1]:80", want: "http://[::1]"},
		{in: "http://[::1]", want: "http://[::1]"},
		{in: "ftp://host", err: "scheme must be https or http"},
		{in: "127.0.0.1:8080", err: "not a URL"},
		{in: "localhost", err: "scheme must be https or http"},
		{in: "http://", err: "no host"},
		{in: "http:host", err: "no host"},
		{in: "http://host/v1", err: "no path, query, fragment or user"},
		{in: "http://host//", err: "no path, query, fragment or user"},
		{in: "http://host/?", err: "no path, query, fragment or user"},
		{in: "http://host?a=b", err: "no path, query, fragment or user"},
		{in: "http://host#x", err: "no path, query, fragment or user"},
		{in: "http://user:pass@host", err: "no path, query, fragment or user"},
		{in: "http://host:", err: "empty port"},
		{in: "http://host:0", err: "port must be 1-65535"},
		{in: "http://host:70000", err: "port must be 1-65535"},
		{in: "http://host:port", err: "not a URL"},
	} {
		got, err := NormalizeEndpoint(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("NormalizeEndpoint(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("NormalizeEndpoint(%q) = %q, %v, want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

// TestNormalizeEndpointIdempotent: a normalised endpoint is its own
// normal form, so a spelling is normalised once wherever it is read.
func TestNormalizeEndpointIdempotent(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"HTTP://127.0.0.1:8080/", "https://Lighthouse.ap-guangzhou.tencentcloudapi.com:443/", "http://[::1]:80"} {
		once, err := NormalizeEndpoint(in)
		if err != nil {
			t.Fatal(err)
		}
		if twice, err := NormalizeEndpoint(once); twice != once || err != nil {
			t.Errorf("NormalizeEndpoint(%q) = %q, %v, want %q", once, twice, err, once)
		}
	}
}
