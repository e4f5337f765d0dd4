package workspace_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/pkg/testenv/testdns"
)

// Verifier URLs are only stored here, never called: no request goes to any of these addresses.
func TestExternalVerifierURLsCannotPointAtMetadataOrLinkLocalAddresses(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		dns := testdns.Start(t)
		dns.Set("verifier.corp.test", netip.MustParseAddr("10.1.2.3"))
		dns.Set("metadata.attacker.test", netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("169.254.169.254"))
		dns.Set("imds6.attacker.test", netip.MustParseAddr("fd00:ec2::254"))
		dns.Set("operator-denied.corp.test", netip.MustParseAddr("10.9.4.4"))
		e := startIdps(t, b, testenv.WithResolver(dns.Resolver()),
			testenv.WithEnv(map[string]string{"AUTHPLANE_EGRESS_DENY_NETWORKS": "10.9.0.0/16"}))
		const ext = "/servers/ws/idps/external"

		for _, u := range []string{
			"http://169.254.169.254/latest/meta-data",
			"http://169.254.169.254./latest/meta-data",
			"http://169.254.0.1:8080/verify",
			"http://[fe80::1]/verify",
			"http://[fe80::1%25eth0]/verify",
			"http://[fd00:ec2::254]/verify",
			"http://[::ffff:169.254.169.254]/verify",
			"http://[::ffff:a9fe:a9fe]/verify",
			"http://[::]/verify",
			"http://0.0.0.0:8080/verify",
			"http://0/verify",
			"http://100.100.100.200/latest/meta-data",
			"http://2852039166/verify",
			"http://0xa9fea9fe/verify",
			"http://0251.0376.0251.0376/verify",
			"http://169.254.43518/verify",
			"http://0xa9.254.0251.0xfe/verify",
			"http://4294967296/verify", // numeric, but no address
			"http://metadata.google.internal/computeMetadata/v1/",
			"https://METADATA.google.internal./verify",
			"http://metadata.goog/verify",
			"http://metadata.attacker.test/verify",
			"http://imds6.attacker.test:8080/verify",
			"http://10.9.0.1/verify", // the operator's network
			"http://operator-denied.corp.test/verify",
		} {
			var out apiError
			code := e.admin(t, e.acme, "POST", ext, map[string]any{"name": "bad", "url": u}, &out)
			if code != http.StatusBadRequest || out.ErrorCode != "invalid_input" || out.Details["field"] != "url" ||
				!strings.Contains(out.Error, "url is not an allowed destination") {
				t.Errorf("%s: %d %+v, want 400 naming url", u, code, out)
			}
		}
		if got, _ := e.list(t, "ws", ""); len(got) != 0 {
			t.Fatalf("%d refused sources stored", len(got))
		}

		accepted := []string{
			"http://10.1.2.3:8080/verify",
			"https://172.16.0.9/verify",
			"http://192.168.1.20/verify",
			"http://[fd12:3456::1]:8443/verify",
			"http://127.0.0.1:9000/verify", // loopback: a verifier beside the server
			"http://localhost:9000/verify",
			"http://verifier.corp.test/verify",
			// Does not resolve now: refused, if it comes to that, when the token service connects.
			"http://not-yet-registered.corp.test/verify",
		}
		for _, u := range accepted {
			var out idp
			if code := e.admin(t, e.acme, "POST", ext, map[string]any{"name": "ok", "url": u}, &out); code != http.StatusCreated || out.URL != u {
				t.Errorf("%s: %d %+v, want 201", u, code, out)
			}
		}
		if got, _ := e.list(t, "ws", ""); len(got) != len(accepted) {
			t.Fatalf("%d sources stored, want the %d accepted", len(got), len(accepted))
		}
	})
}
