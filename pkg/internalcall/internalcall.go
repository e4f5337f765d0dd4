// Package internalcall is the platform's credential for the calls its services make to each other: tenant
// provisioning and deletion fan-out, client authentication, server metadata, denylists. It is a short-lived token
// MACed under a key derived from the master key, so only the platform's own processes can mint one: no tenant,
// operator or outside caller can hold it, whatever tokens they have.
//
// The key comes straight from the master key, never from a database's stored data keys: processes that run only
// the gateway have no database and mint credentials too. It is never stored nor handed out, so a new master key
// simply gives a new one; while processes move to a new master key, the previous ones' credentials are accepted.
package internalcall

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/authplane/authplane/pkg/secrets"
)

const (
	// prefix names the credential's format; it is never a JWT, so no access-token verifier takes it for one.
	prefix = "apint1."
	// lifetime bounds a credential; callers renew theirs well before it ends (renewMargin).
	lifetime    = 5 * time.Minute
	renewMargin = 2 * time.Minute
	// maxClockSkew is how far in the future an expiry may lie: a credential valid for much longer was not minted
	// by a process of this platform.
	maxClockSkew = time.Minute
)

// purpose derives the MAC key from the master key (secrets.Keyring.DeriveSecret).
const purpose = "internal-calls"

// Authority mints this process's credential and verifies those of the platform's other processes.
type Authority struct {
	key []byte
	// accepted are the keys a credential may be MACed under: key, then those of the previous master keys.
	accepted [][]byte
	caller   string // who mints: the services this process runs, for logs
	now      func() time.Time

	mu      sync.Mutex
	token   string
	renewAt time.Time

	decorators []func(context.Context, metadata.MD)
}

// New derives the credential key from k, the keyring derived from the master key (secrets.NewKeyring or
// MasterKey.DerivedKeyring), and accepts credentials minted under previous keyrings too (those of
// AUTHPLANE_PREVIOUS_MASTER_KEYS). caller names the minting process (for example its services).
func New(k *secrets.Keyring, caller string, previous ...*secrets.Keyring) *Authority {
	a := &Authority{key: []byte(k.DeriveSecret(purpose)), caller: caller, now: time.Now}
	a.accepted = [][]byte{a.key}
	for _, p := range previous {
		a.accepted = append(a.accepted, []byte(p.DeriveSecret(purpose)))
	}
	return a
}

// Token returns a valid credential, minting a new one when the cached one nears its end.
func (a *Authority) Token() string {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" || !now.Before(a.renewAt) {
		a.token = a.mint(a.caller, now.Add(lifetime).Unix())
		a.renewAt = now.Add(lifetime - renewMargin)
	}
	return a.token
}

func (a *Authority) mint(caller string, exp int64) string {
	body := base64.RawURLEncoding.EncodeToString([]byte(caller)) + "." + strconv.FormatInt(exp, 10)
	return prefix + body + "." + mac(a.key, body)
}

func mac(key []byte, body string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prefix))
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether raw is a current credential of this platform, and who minted it.
func (a *Authority) Verify(raw string) (caller string, ok bool) {
	if a == nil || !strings.HasPrefix(raw, prefix) {
		return "", false
	}
	body, sum, found := cutLast(raw[len(prefix):], '.')
	if !found || !a.macMatches(body, sum) {
		return "", false
	}
	who, expText, found := strings.Cut(body, ".")
	if !found {
		return "", false
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	now := a.now()
	if err != nil || now.Unix() >= exp || time.Unix(exp, 0).After(now.Add(lifetime+maxClockSkew)) {
		return "", false
	}
	name, err := base64.RawURLEncoding.DecodeString(who)
	if err != nil {
		return "", false
	}
	return string(name), true
}

// macMatches reports whether sum is body's MAC under one of the accepted keys.
func (a *Authority) macMatches(body, sum string) bool {
	for _, key := range a.accepted {
		if hmac.Equal([]byte(sum), []byte(mac(key, body))) {
			return true
		}
	}
	return false
}

func cutLast(s string, sep byte) (before, after string, found bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// Outgoing returns ctx for a call to another service as the platform: the credential replaces any caller's
// `authorization` metadata (a caller's token is never forwarded on an internal call), other metadata such as
// the request id is kept, and what the decorators add (OnOutgoing) is added.
func (a *Authority) Outgoing(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set("authorization", "Bearer "+a.Token())
	for _, d := range a.decorators {
		d(ctx, md)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// OnOutgoing adds a decorator of internal calls' metadata (the audit trail's actor, for one). Set them up before
// the process serves.
func (a *Authority) OnOutgoing(d func(ctx context.Context, md metadata.MD)) {
	a.decorators = append(a.decorators, d)
}
