package lighthouse_test

import (
	"errors"
	"testing"

	"github.com/batchreset/batchreset/lighthouse"
)

func TestCheckInstanceID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"lhins-0a1b2c3d", "lhins-aaaaaaaa", "lhins-12345678"} {
		if err := lighthouse.CheckInstanceID(id); err != nil {
			t.Errorf("CheckInstanceID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "lhins-", "lhins-abc", "lhins-abcdefghi", "lhins-ABCDEFGH", "lhins-aaaa aaa", "ins-aaaaaaaa", " lhins-aaaaaaaa", "lhbp-aaaaaaaa", "lhins-aaaaaaa\u00e9"} {
		err := lighthouse.CheckInstanceID(id)
		if !errors.Is(err, lighthouse.ErrInstanceID) {
			t.Errorf("CheckInstanceID(%q) = %v, want ErrInstanceID", id, err)
		}
	}
	const want = `malformed ID "lhins-abc" (want lhins- and 8 lowercase letters or digits)`
	if err := lighthouse.CheckInstanceID("lhins-abc"); err == nil || err.Error() != want {
		t.Errorf("CheckInstanceID(lhins-abc) = %v, want %s", err, want)
	}
}
