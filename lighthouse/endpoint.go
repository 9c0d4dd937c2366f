package lighthouse

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// NormalizeEndpoint returns the one spelling of an API endpoint URL:
// "scheme://host[:port]", scheme and host in lower case, the scheme's
// default port (443 for https, 80 for http) dropped, and a trailing "/"
// dropped. Every use of an endpoint (the client, the rate limits and
// instance registry shared on a host, the limits shared through a database,
// banners) takes it from here, so that "HTTP://127.0.0.1:8080/" and
// "http://127.0.0.1:8080" are one API server: the documented rate limit is
// per action, access region (the API server the endpoint reaches) and
// sub-account (more-apis.md §1f), never per spelling.
//
// Anything else in the URL (a path other than "/", a query, a fragment,
// user:password, an empty or malformed port) is an error: the API sits at
// "/" (the SDK signs the canonical URI "/"), so these look like typos.
func NormalizeEndpoint(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: not a URL (want https://host or http://host:port)", endpoint)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", fmt.Errorf("endpoint %q: scheme must be https or http", endpoint)
	}
	if u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("endpoint %q: no host (want %s://host[:port])", endpoint, scheme)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("endpoint %q: must be %s://host[:port] with no path, query, fragment or user", endpoint, scheme)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", fmt.Errorf("endpoint %q: no host (want %s://host[:port])", endpoint, scheme)
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("endpoint %q: empty port", endpoint)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("endpoint %q: port must be 1-65535", endpoint)
		}
		port = strconv.Itoa(n) // "08080" is 8080
		if (scheme == "https" && n == 443) || (scheme == "http" && n == 80) {
			port = ""
		}
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal
	}
	return scheme + "://" + host, nil
}
