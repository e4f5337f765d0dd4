package platform

import (
	"errors"
	"testing"

	"github.com/authplane/authplane/pkg/apierr"
)

func TestNewResourceID(t *testing.T) {
	tests := []struct {
		requested string
		wantSame  bool
		wantErr   bool
	}{
		{"", false, false},
		{"pool-demo-identity-pool", true, false},
		{"Bad Id", false, true},
		{"-leading-dash", false, true},
	}
	for _, tc := range tests {
		id, err := NewResourceID(tc.requested)
		var ae *apierr.Error
		switch {
		case tc.wantErr && (!errors.As(err, &ae) || ae.Field != "id"):
			t.Errorf("%q: err %v, want an InvalidArgument naming id", tc.requested, err)
		case !tc.wantErr && (err != nil || !ValidResourceID(id)):
			t.Errorf("%q: got %q, %v", tc.requested, id, err)
		case tc.wantSame && id != tc.requested:
			t.Errorf("%q: replaced by %q", tc.requested, id)
		}
	}
	a, _ := NewResourceID("")
	b, _ := NewResourceID("")
	if a == b {
		t.Error("generated ids repeat")
	}
}
