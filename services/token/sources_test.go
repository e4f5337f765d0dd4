package token

import (
	"net/http"
	"testing"
)

// Through a proxy, the dialer's Control hook would check the proxy's address and never the verifier's.
func TestTheVerifierClientUsesNoProxy(t *testing.T) {
	tr, ok := newVerifierClient(nil).Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T", newVerifierClient(nil).Transport)
	}
	if tr.Proxy != nil {
		t.Error("the verifier client has a proxy")
	}
	if tr.DialContext == nil || tr.DialTLSContext != nil || tr.DialTLS != nil || tr.Dial != nil {
		t.Error("the verifier client must connect through its one dialer (the one with the egress Control hook)")
	}
}
