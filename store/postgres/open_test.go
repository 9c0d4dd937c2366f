package postgres_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/batchreset/batchreset/store/postgres"
)

// TestOpenHidesPassword checks that no connection error shows the password,
// whichever form the connection string takes and wherever it fails.
func TestOpenHidesPassword(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: taken, then freed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	const secret = "s3cr3t-Pa55"
	for _, tc := range []struct {
		name, conn string
		wantText   string // something the error should say
	}{
		{"URLClosedPort", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/test?sslmode=disable", secret, port), "127.0.0.1"},
		{"URLQueryPassword", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable&password=%s", port, secret), "127.0.0.1"},
		{"URLEscapedPassword", fmt.Sprintf("postgresql://postgres:%s%%40x@127.0.0.1:%d/test?sslmode=disable", secret, port), "127.0.0.1"},
		{"KeywordValue", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=test sslmode=disable", port, secret), "connection string not shown"},
		{"KeywordValueQuoted", fmt.Sprintf("host=127.0.0.1 port=%d password='%s x' sslmode=disable", port, secret), "connection string not shown"},
		{"URLBadPort", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:notaport/test", secret), "open"},
		{"URLBadSSLMode", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/test?sslmode=bogus", secret, port), "open"},
		{"KeywordValueBadSSLMode", fmt.Sprintf("host=127.0.0.1 password=%s sslmode=bogus", secret), "open"},
		{"BrokenURL", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/test?%%zz", secret, port), "open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := postgres.Open(context.Background(), tc.conn)
			if err == nil {
				s.Close()
				t.Fatal("Open() = nil error, want one")
			}
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%q", err)} {
				if strings.Contains(text, secret) || strings.Contains(text, "s3cr3t") {
					t.Errorf("Open() error shows the password: %s", text)
				}
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Open() = %q, want it to mention %q", err, tc.wantText)
			}
		})
	}
}
