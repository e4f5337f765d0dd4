package tlsfiles_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/authplane/authplane/pkg/testenv/testca"
	"github.com/authplane/authplane/pkg/tlsfiles"
)

// syncBuffer is a log destination safe for the handshakes' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func served(t *testing.T, c *tlsfiles.Certificate) string {
	t.Helper()
	pair, err := c.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf.SerialNumber.String()
}

func TestLoadRefusesAPairThatCannotBeServed(t *testing.T) {
	ca := testca.New(t)
	good, other := ca.Issue(t), ca.Issue(t)
	goodCert, goodKey := good.Files(t)
	otherCert, otherKey := other.Files(t)
	expiredCert, expiredKey := ca.Issue(t, testca.Expired()).Files(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, certFile, keyFile, want string
	}{
		{"a key of another certificate", goodCert, otherKey, "private key does not match public key"},
		{"the key given as the certificate", goodKey, goodKey, "failed to find certificate PEM data"},
		{"a file that is not PEM", garbage, goodKey, "failed to find any PEM data"},
		{"an expired certificate", expiredCert, expiredKey, "expired at"},
		{"a missing certificate file", filepath.Join(t.TempDir(), "none.crt"), goodKey, "no such file"},
		{"a missing key file", otherCert, filepath.Join(t.TempDir(), "none.key"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsfiles.Load(tc.certFile, tc.keyFile, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	c, err := tlsfiles.Load(goodCert, goodKey, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := served(t, c), good.Cert.SerialNumber.String(); got != want {
		t.Fatalf("serves serial %s, want %s", got, want)
	}
}

// TestReplacedFilesAreServedOnlyWhenGood changes the files under a loaded certificate as renewals (and mistakes)
// do, in order, and checks which certificate the next handshake is given and what is logged each time.
func TestReplacedFilesAreServedOnlyWhenGood(t *testing.T) {
	ca := testca.New(t)
	first := ca.Issue(t)
	certFile, keyFile := first.Files(t)
	var log syncBuffer
	c, err := tlsfiles.Load(certFile, keyFile, slog.New(slog.NewJSONHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	second, third, fourth := ca.Issue(t), ca.Issue(t), ca.Issue(t)
	rewrite := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		change func()
		serves *testca.Leaf
		logged string // "" when nothing is
	}{
		{"the files unchanged", func() {}, first, ""},
		{"a new pair renamed into place", func() { second.Write(t, certFile, keyFile) }, second, "TLS certificate reloaded"},
		{"a new certificate whose key is not written yet", func() { third.Write(t, certFile, filepath.Join(t.TempDir(), "k")) }, second,
			"private key does not match public key"},
		{"the same half-written files at the next handshake", func() {}, second, ""},
		{"its key written", func() { third.Write(t, certFile, keyFile) }, third, "TLS certificate reloaded"},
		{"an expired pair", func() { ca.Issue(t, testca.Expired()).Write(t, certFile, keyFile) }, third, "expired at"},
		{"a certificate file cut short", func() { rewrite(certFile, fourth.CertPEM[:len(fourth.CertPEM)/2]) }, third,
			"cannot be served"},
		{"the certificate file removed", func() { _ = os.Remove(certFile) }, third, "TLS certificate files unreadable"},
		{"still removed", func() {}, third, ""},
		{"a good pair written in place", func() { rewrite(keyFile, fourth.KeyPEM); rewrite(certFile, fourth.CertPEM) }, fourth,
			"TLS certificate reloaded"},
	}
	for _, step := range steps {
		before := len(log.String())
		step.change()
		if got, want := served(t, c), step.serves.Cert.SerialNumber.String(); got != want {
			t.Fatalf("%s: serves serial %s, want %s", step.name, got, want)
		}
		if got := c.Leaf().SerialNumber.String(); got != step.serves.Cert.SerialNumber.String() {
			t.Errorf("%s: Leaf is serial %s", step.name, got)
		}
		logged := log.String()[before:]
		if step.logged == "" && logged != "" || !strings.Contains(logged, step.logged) || strings.Count(logged, "\n") > 1 {
			t.Errorf("%s: logged %q, want one line with %q (nothing when empty)", step.name, logged, step.logged)
		}
	}
}

func TestPool(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	dir := t.TempDir()
	file := func(name string, parts ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Join(parts, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPEM, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, err := os.ReadFile(other.File)
	if err != nil {
		t.Fatal(err)
	}
	leaf, otherLeaf := ca.Issue(t), other.Issue(t)
	tests := []struct {
		name, file string
		verifies   []*testca.Leaf // certificates the pool must verify, when it is made
		want       string         // an error containing it; "" for a pool
	}{
		{"one CA", ca.File, []*testca.Leaf{leaf}, ""},
		{"a bundle of two with text around them", file("bundle.pem", []byte("# ours\n"), caPEM, []byte("subject: other\n"), otherPEM, []byte("\n")),
			[]*testca.Leaf{leaf, otherLeaf}, ""},
		{"an empty file", file("empty.pem"), nil, "holds no PEM certificate"},
		{"a private key in the bundle", file("key.pem", caPEM, leaf.KeyPEM), nil, "block 2 is a PRIVATE KEY"},
		{"a certificate that does not parse", file("bad.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), nil, "certificate 1"},
		{"a missing file", filepath.Join(dir, "none.pem"), nil, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool, err := tlsfiles.Pool(tc.file)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Pool: %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range tc.verifies {
				if _, err := l.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
					t.Errorf("a certificate a CA of the file signed does not verify against the pool: %v", err)
				}
			}
		})
	}
}
