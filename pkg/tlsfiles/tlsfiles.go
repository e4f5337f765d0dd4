// Package tlsfiles builds a process's TLS configurations from PEM files: the certificate its listeners serve,
// read again when its files change so that a renewal needs no restart, and the CA pool it verifies the other
// services' certificates with.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Certificate serves the key pair held in two PEM files. Each handshake first compares the files' identity,
// modification time and size with those of the last read (two stat calls, nothing read); when one differs, the
// pair is read again and served from then on if it is good: it parses, the key matches the certificate, and the
// certificate has not expired. A bad pair is logged once and the last good one kept. A renewal caught halfway (the
// new certificate written, not yet its key) is therefore refused, and taken at the first handshake after the key
// is written, since that changes the key file.
type Certificate struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	current *tls.Certificate
	seen    fileStates // the files as they were when last read, whether or not their pair was good
}

// Load reads the pair a listener will serve; unlike a later change of the files, a bad pair is an error here.
func Load(certFile, keyFile string, log *slog.Logger) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile, log: log, seen: statFiles(certFile, keyFile)}
	if c.seen.err != nil {
		return nil, c.seen.err
	}
	pair, err := loadPair(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	c.current = pair
	return c, nil
}

// Leaf is the certificate served now.
func (c *Certificate) Leaf() *x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current.Leaf
}

// GetCertificate is the tls.Config callback: the latest good pair, read again first if its files changed.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := statFiles(c.certFile, c.keyFile)
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.equal(c.seen) {
		return c.current, nil
	}
	c.seen = now
	if now.err != nil {
		c.log.Warn("TLS certificate files unreadable; still serving the previous certificate", "error", now.err,
			"serial", c.current.Leaf.SerialNumber.String())
		return c.current, nil
	}
	pair, err := loadPair(c.certFile, c.keyFile, time.Now())
	if err != nil {
		c.log.Warn("TLS certificate files changed to a pair that cannot be served; still serving the previous certificate",
			"error", err, "serial", c.current.Leaf.SerialNumber.String())
		return c.current, nil
	}
	c.current = pair
	c.log.Info("TLS certificate reloaded", Attrs(pair.Leaf)...)
	return c.current, nil
}

// ServerConfig is the TLS configuration of a listener serving c: TLS 1.2 or later, Go's default cipher suites.
func (c *Certificate) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// Attrs describes a certificate for a log line.
func Attrs(leaf *x509.Certificate) []any {
	names := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return []any{"serial", leaf.SerialNumber.String(), "names", strings.Join(names, ","),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
}

func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if now.After(pair.Leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %s expired at %s", certFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}

type fileStates struct {
	cert, key os.FileInfo
	err       error
}

func statFiles(certFile, keyFile string) fileStates {
	var s fileStates
	var certErr, keyErr error
	s.cert, certErr = os.Stat(certFile)
	s.key, keyErr = os.Stat(keyFile)
	s.err = errors.Join(certErr, keyErr)
	return s
}

// equal reports the same files, unchanged; two failed looks count as equal so that a missing file is logged once.
func (s fileStates) equal(o fileStates) bool {
	if s.err != nil || o.err != nil {
		return s.err != nil && o.err != nil
	}
	return sameFile(s.cert, o.cert) && sameFile(s.key, o.key)
}

// sameFile is true for the same file (a replacement by rename, as kubelet, cert-manager and certbot do, is another
// file) with the same modification time and size (a rewrite in place).
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// Pool reads a PEM bundle of CA certificates (text between the blocks is ignored, as in `openssl x509 -text`
// output). Every block must be a certificate that parses, and there must be at least one: a bundle that silently
// verified nothing would fail only at the first connection.
func Pool(file string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := raw; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("CA file %s: block %d is a %s, not a CERTIFICATE", file, n+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: certificate %d: %w", file, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ClientConfig is the TLS configuration of connections to the other services: their certificates verified by the
// pool, for serverName or, when it is "", the host of the address dialed.
func ClientConfig(pool *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: serverName}
}
