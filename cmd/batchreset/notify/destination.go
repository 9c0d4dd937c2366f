package notify

import (
	"cmp"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// Destination is one webhook URL to post to. A webhook's URL is its
// credential (Slack's and most others' token is in the path, some carry
// it in the query or a user:password), so a Destination is shown by its
// scheme and host only: String, GoString and LogValue print that, and
// every error of a delivery is rebuilt around it rather than quoting the
// URL. The zero value is not a destination; Config makes them.
type Destination struct {
	url *url.URL
	// name is what logs and errors show: scheme://host, and "/…" when
	// the URL has more (see redact).
	name string
	// secrets are the spellings of the URL and of its secret parts that
	// scrub removes from an error's text, longest first.
	secrets []string
	// argv: the URL was given on the command line, where ps shows it.
	argv bool
}

// malformedURL stands for a URL that does not parse: nothing of it is shown.
const malformedURL = "(malformed URL)"

// parseDestination parses raw, which must be an http or https URL with a
// host. Its error never quotes raw: it names where raw came from (from,
// e.g. "the 2nd --notify") and what of raw is safe to show.
func parseDestination(raw, from string) (Destination, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return Destination{}, errors.New(from + ": " + redact(raw) + " is not an http or https URL with a host")
	}
	// Go's parser takes both of these as part of a path or query; they are
	// two URLs run together (a URL has no white space, and one inside
	// another's query is escaped).
	if strings.ContainsFunc(raw, unicode.IsSpace) || strings.Count(strings.ToLower(raw), "://") > 1 {
		return Destination{}, errors.New(from + ": " + redact(raw) + " looks like several URLs run together: give one URL per line, or separate them with white space")
	}
	d := Destination{url: u, name: redact(raw)}
	parts := []string{raw, u.String(), u.Redacted(), u.EscapedPath(), u.Path, u.RawPath, u.RawQuery, u.Fragment, u.EscapedFragment()}
	if u.User != nil {
		p, _ := u.User.Password()
		parts = append(parts, u.User.String(), u.User.Username(), p)
	}
	for k, vs := range u.Query() {
		parts = append(parts, k)
		parts = append(parts, vs...)
	}
	for _, s := range parts {
		if s != "" && s != "/" && !slices.Contains(d.secrets, s) {
			d.secrets = append(d.secrets, s)
		}
	}
	slices.SortFunc(d.secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return d, nil
}

// redact shows raw as scheme://host (both lower case, with the port if
// raw has one), followed by "/…" when raw has anything else: a path, a
// query, a fragment or a user:password are taken as secret, since a
// webhook's token may be in any of them. A URL that does not parse shows
// as malformedURL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return malformedURL
	}
	name := u.Scheme + "://" + strings.ToLower(u.Host)
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		name += "/…"
	}
	return name
}

// hasSecret reports whether d has any part redact hides.
func (d Destination) hasSecret() bool {
	return strings.HasSuffix(d.name, "/…")
}

// same reports whether d and o are the same URL, however spelled: the
// scheme and host are compared without case.
func (d Destination) same(o Destination) bool {
	a, b := *d.url, *o.url
	a.Host, b.Host = strings.ToLower(a.Host), strings.ToLower(b.Host)
	return a.String() == b.String()
}

// String returns the destination's scheme and host.
func (d Destination) String() string { return d.name }

// GoString returns what String does, so that %#v shows no secret either.
func (d Destination) GoString() string { return d.name }

// LogValue returns what String does.
func (d Destination) LogValue() slog.Value { return slog.StringValue(d.name) }

// scrub returns err's text with the URL kept out: net/http's errors
// (*url.Error) quote the request's URL in its canonical spelling (scheme
// lower case, the password as ***), which no search for the URL as typed
// finds, so the error is rebuilt from its operation, the destination's
// name and the cause; then every spelling of the URL and of its secret
// parts is removed from the text as well. The result wraps nothing: the
// original error holds the URL.
func (d Destination) scrub(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return errors.New(ue.Op + " " + d.name + ": " + d.scrubText(ue.Err.Error()))
	}
	return errors.New(d.scrubText(err.Error()))
}

// scrubText returns s without any spelling of d's URL or its secret parts.
func (d Destination) scrubText(s string) string {
	for _, p := range d.secrets {
		s = strings.ReplaceAll(s, p, "…")
	}
	return s
}
