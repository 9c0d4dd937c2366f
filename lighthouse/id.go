package lighthouse

import (
	"errors"
	"fmt"
	"strings"
)

// InstanceIDPrefix starts every Lighthouse instance ID.
const InstanceIDPrefix = "lhins-"

// ErrInstanceID is what CheckInstanceID returns for an ID of the wrong form,
// wrapped in a message that quotes the ID.
var ErrInstanceID = errors.New("malformed ID")

// CheckInstanceID reports whether id has the form of a Lighthouse instance
// ID: lhins- followed by exactly 8 lowercase letters or digits, as the API
// issues them. It is the one check of every input that names instances
// (jobs CSV, import, select's --exclude), so that a malformed ID gets the
// same error wherever it is given; the error wraps ErrInstanceID.
func CheckInstanceID(id string) error {
	if !validID(id, InstanceIDPrefix) {
		return fmt.Errorf("%w %q (want %s and 8 lowercase letters or digits)", ErrInstanceID, id, InstanceIDPrefix)
	}
	return nil
}

// validID reports whether s is prefix followed by 8 lowercase ASCII letters
// or digits.
func validID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 8 {
		return false
	}
	for i := range len(rest) {
		if c := rest[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
